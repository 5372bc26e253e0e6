"""TokenVerifier (async) and SyncTokenVerifier: a token in, a :class:`Principal` or InvalidToken out.

The order of the checks, per token:

1. the verified-token cache (a hit costs no crypto; see :mod:`s2s.verify.cache`);
2. :func:`s2s.verify.compact.parse_compact`: sizes, base64url, header shape, allowed parameters;
3. the payload's ``iss`` selects the configured issuer (exact match, or an Entra tenant template
   with an allowed tenant); a token naming an issuer that is not configured is refused before any
   I/O, and only that issuer's keys are ever tried;
4. that issuer's ``typ`` and header-parameter rules;
5. the key by ``kid`` from that issuer's JWKS source, its pinned alg equal to the token's alg,
   the signature (``cryptography``, directly);
6. the claims (:class:`s2s.verify.claims.ClaimsPolicy`), then the revocation hook.

Whatever fails, and whatever is raised on the way, the caller gets :class:`InvalidToken` with a
short fixed description, raised outside any ``except`` block so that no exception chain carries
token material.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from s2s.clock import Clock, SystemClock, system_clock
from s2s.errors import ConfigError
from s2s.verify.algorithms import VerifyKey
from s2s.verify.cache import VerifiedTokenCache
from s2s.verify.claims import ClaimsPolicy
from s2s.verify.compact import (
    BASE_HEADER_PARAMS,
    ParsedToken,
    TokenLimits,
    check_signature,
    loads_object,
    parse_compact,
)
from s2s.verify.config import TENANT_PLACEHOLDER, VerifierConfig
from s2s.verify.errors import InvalidToken
from s2s.verify.jwks import AsyncJWKSSource, SyncJWKSSource
from s2s.verify.principal import Principal, from_verified_claims

__all__ = ["SyncTokenVerifier", "TokenVerifier"]

log = logging.getLogger("s2s.verify")

_ID_TOKEN_TYPES = frozenset({"", "jwt"})


@dataclass(slots=True)
class _Issuer:
    config: VerifierConfig
    source: Any  # AsyncJWKSSource | SyncJWKSSource
    claims: ClaimsPolicy
    token_types: frozenset[str]
    header_params: frozenset[str]
    # False when parse_compact's check (against every issuer's extra parameters) is already
    # this issuer's own check: only one issuer, or all issuers allowing the same parameters.
    check_header: bool = True
    revocation: Any = None
    prefix: str = ""
    suffix: str = ""

    def fresh_key(self, kid: str) -> VerifyKey | None:
        key: VerifyKey | None = self.source.fresh_key(kid)
        return key


def _as_list(configs: VerifierConfig | Sequence[VerifierConfig]) -> list[VerifierConfig]:
    items = [configs] if isinstance(configs, VerifierConfig) else list(configs)
    if not items:
        raise ConfigError("at least one VerifierConfig is required")
    for item in items:
        if not isinstance(item, VerifierConfig):
            raise ConfigError("configs must be VerifierConfig instances")
    issuers = [c.issuer for c in items]
    if len(set(issuers)) != len(issuers):
        raise ConfigError("each issuer may be configured only once")
    return items


class _Core:
    """Everything but the I/O, shared by both verifiers."""

    def __init__(
        self, configs: list[VerifierConfig], sources: list[Any], clock: Clock, cache_size: int
    ) -> None:
        self._clock = clock
        # The system clock is read directly on the per-token path (no Python frame in between).
        self._now = time.time if type(clock) is SystemClock else clock.now
        self._cache = VerifiedTokenCache(clock, cache_size)
        self._exact: dict[str, _Issuer] = {}
        self._templates: list[_Issuer] = []
        self._issuers: list[_Issuer] = []
        extra: set[str] = set()
        for config, source in zip(configs, sources, strict=True):
            issuer = _Issuer(
                config=config,
                source=source,
                claims=ClaimsPolicy(config),
                token_types=frozenset(config.token_types),
                header_params=BASE_HEADER_PARAMS.union(config.extra_header_params),
            )
            extra.update(config.extra_header_params)
            if TENANT_PLACEHOLDER in config.issuer:
                issuer.prefix, _, issuer.suffix = config.issuer.partition(TENANT_PLACEHOLDER)
                self._templates.append(issuer)
            else:
                self._exact[config.issuer] = issuer
            self._issuers.append(issuer)
        self._extra_params = frozenset(extra)
        allowed = BASE_HEADER_PARAMS.union(extra)
        for issuer in self._issuers:
            issuer.check_header = issuer.header_params != allowed
            issuer.revocation = issuer.config.revocation_check
        self._limits = TokenLimits(
            max_token=max(c.limits.max_token for c in configs),
            max_header=max(c.limits.max_header for c in configs),
            max_payload=max(c.limits.max_payload for c in configs),
            max_signature=max(c.limits.max_signature for c in configs),
        )
        self._revocation = any(c.revocation_check is not None for c in configs)

    @property
    def issuers(self) -> list[_Issuer]:
        return self._issuers

    def _parse(
        self, token: str, *, id_token: bool = False
    ) -> tuple[ParsedToken, _Issuer, dict[str, Any], str | None]:
        parsed = parse_compact(token, limits=self._limits, extra_header_params=self._extra_params)
        try:
            claims = loads_object(parsed.payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidToken("malformed token payload") from None
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise InvalidToken("untrusted issuer")
        tenant: str | None = None
        issuer = self._exact.get(iss)
        if issuer is None:
            for candidate in self._templates:
                if iss.startswith(candidate.prefix) and iss.endswith(candidate.suffix):
                    middle = iss[len(candidate.prefix) : len(iss) - len(candidate.suffix)]
                    if (
                        middle
                        and "/" not in middle
                        and candidate.claims.tenants
                        and middle in candidate.claims.tenants
                    ):
                        issuer, tenant = candidate, middle
                        break
            if issuer is None:
                raise InvalidToken("untrusted issuer")
        if issuer.check_header and not issuer.header_params.issuperset(parsed.header):
            raise InvalidToken("unsupported token header")
        typ = parsed.typ or ""
        if id_token:
            if typ not in _ID_TOKEN_TYPES:
                raise InvalidToken("wrong token type")
        elif typ not in issuer.token_types:
            raise InvalidToken("wrong token type")
        return parsed, issuer, claims, tenant

    def _finish_id_token(
        self,
        parsed: ParsedToken,
        issuer: _Issuer,
        claims: dict[str, Any],
        tenant: str | None,
        key: Any,
        *,
        nonce: str | None,
        client_id: str | None,
    ) -> Principal:
        check_signature(parsed, key)
        policy = ClaimsPolicy(issuer.config, id_token=True, audiences=(client_id,) if client_id else None)
        policy.check(claims, self._clock.now(), tenant)
        policy.check_id_token(claims, nonce)
        return from_verified_claims(claims)

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for issuer in self._issuers:
            c = issuer.config
            info = issuer.source.describe()
            out.append(
                {
                    "issuer": c.issuer,
                    "audiences": list(c.audiences),
                    "algorithms": list(c.algorithms),
                    "token_types": list(c.token_types),
                    "jwks_uri": info["jwks_uri"],
                    "kids": [k["kid"] for k in info["keys"]],
                    "keys": info["keys"],
                    "keys_fresh": info["fresh"],
                    "keys_age_seconds": info["age_seconds"],
                    "allowed_tenants": list(c.allowed_tenants) if c.allowed_tenants else None,
                }
            )
        return out


def _refuse(reason: str) -> InvalidToken:
    log.info("token refused: %s", reason)
    return InvalidToken(reason)


def _unexpected(exc: BaseException) -> str:
    # The type only: messages of json/cryptography errors may quote parts of the token.
    log.debug("token refused after an unexpected %s", type(exc).__name__)
    return "token invalid"


class TokenVerifier:
    """Verifies access tokens of one or several issuers, each against its own JWKS."""

    def __init__(
        self,
        configs: VerifierConfig | Sequence[VerifierConfig],
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
        cache_size: int = 4096,
    ) -> None:
        items = _as_list(configs)
        self._client = http_client
        self._owns_client = False
        self._clock = clock
        sources = [AsyncJWKSSource(c, self._get_client, clock) for c in items]
        self._core = _Core(items, sources, clock, cache_size)

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
            self._owns_client = True
        return self._client

    async def start(self) -> None:
        """Create the HTTP client if none was given and fetch every issuer's keys (errors logged)."""
        self._get_client()
        await asyncio.gather(*(issuer.source.refresh() for issuer in self._core.issuers))

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
            self._owns_client = False

    async def __aenter__(self) -> TokenVerifier:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def describe(self) -> list[dict[str, Any]]:
        return self._core.describe()

    @property
    def sources(self) -> list[AsyncJWKSSource]:
        return [i.source for i in self._core.issuers]

    async def verify(self, token: str) -> Principal:
        core = self._core
        try:
            entry = core._cache.get(token)
            if entry is not None:
                if core._revocation:
                    await self._revoked(entry.source, entry.principal)  # type: ignore[arg-type]
                return entry.principal
            # The cold path in one frame (each call saved counts on the per-token path).
            parsed, issuer, claims, tenant = core._parse(token)
            kid = parsed.kid
            key = issuer.source.fresh_key(kid)
            if key is None:
                key = await issuer.source.get_key(kid)
            check_signature(parsed, key)
            valid_until = issuer.claims.check(claims, core._now(), tenant)
            principal = from_verified_claims(claims)
            if issuer.revocation is not None:
                await self._revoked(issuer, principal)
            core._cache.put(token, principal, valid_until, source=issuer, kid=kid, key=key)
            return principal
        except InvalidToken as exc:
            reason = exc.description
        except Exception as exc:
            reason = _unexpected(exc)
        raise _refuse(reason)

    async def verify_id_token(
        self, token: str, *, nonce: str | None = None, client_id: str | None = None
    ) -> Principal:
        """An OpenID Connect ID token (``typ`` absent or JWT; ``aud`` = ``client_id`` or the
        configured audiences; ``nonce`` compared when given). Access-token-only rules (claim
        assertions, forbidden claims) do not apply. ID tokens are not cached."""
        core = self._core
        try:
            parsed, issuer, claims, tenant = core._parse(token, id_token=True)
            key = await issuer.source.get_key(parsed.kid)
            principal = core._finish_id_token(
                parsed, issuer, claims, tenant, key, nonce=nonce, client_id=client_id
            )
            if issuer.config.revocation_check is not None:
                await self._revoked(issuer, principal)
            return principal
        except InvalidToken as exc:
            reason = exc.description
        except Exception as exc:
            reason = _unexpected(exc)
        raise _refuse(reason)

    async def _revoked(self, issuer: _Issuer, principal: Principal) -> None:
        check = issuer.config.revocation_check
        if check is None:
            return
        result = check(principal)
        if inspect.isawaitable(result):
            result = await result
        if result:
            raise InvalidToken("token revoked")


class SyncTokenVerifier:
    """The blocking twin of :class:`TokenVerifier` (same rules, httpx.Client, thread-safe)."""

    def __init__(
        self,
        configs: VerifierConfig | Sequence[VerifierConfig],
        *,
        http_client: httpx.Client | None = None,
        clock: Clock = system_clock,
        cache_size: int = 4096,
    ) -> None:
        items = _as_list(configs)
        self._client = http_client
        self._owns_client = False
        self._clock = clock
        sources = [SyncJWKSSource(c, self._get_client, clock) for c in items]
        self._core = _Core(items, sources, clock, cache_size)

    def _get_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False, trust_env=False)
            self._owns_client = True
        return self._client

    def start(self) -> None:
        self._get_client()
        for issuer in self._core.issuers:
            issuer.source.refresh()

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
            self._owns_client = False

    def __enter__(self) -> SyncTokenVerifier:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> list[dict[str, Any]]:
        return self._core.describe()

    @property
    def sources(self) -> list[SyncJWKSSource]:
        return [i.source for i in self._core.issuers]

    def verify(self, token: str) -> Principal:
        core = self._core
        try:
            entry = core._cache.get(token)
            if entry is not None:
                if core._revocation:
                    self._revoked(entry.source, entry.principal)  # type: ignore[arg-type]
                return entry.principal
            # The cold path in one frame (each call saved counts on the per-token path).
            parsed, issuer, claims, tenant = core._parse(token)
            kid = parsed.kid
            key = issuer.source.get_key(kid)
            check_signature(parsed, key)
            valid_until = issuer.claims.check(claims, core._now(), tenant)
            principal = from_verified_claims(claims)
            if issuer.revocation is not None:
                self._revoked(issuer, principal)
            core._cache.put(token, principal, valid_until, source=issuer, kid=kid, key=key)
            return principal
        except InvalidToken as exc:
            reason = exc.description
        except Exception as exc:
            reason = _unexpected(exc)
        raise _refuse(reason)

    def verify_id_token(
        self, token: str, *, nonce: str | None = None, client_id: str | None = None
    ) -> Principal:
        core = self._core
        try:
            parsed, issuer, claims, tenant = core._parse(token, id_token=True)
            key = issuer.source.get_key(parsed.kid)
            principal = core._finish_id_token(
                parsed, issuer, claims, tenant, key, nonce=nonce, client_id=client_id
            )
            if issuer.config.revocation_check is not None:
                self._revoked(issuer, principal)
            return principal
        except InvalidToken as exc:
            reason = exc.description
        except Exception as exc:
            reason = _unexpected(exc)
        raise _refuse(reason)

    def _revoked(self, issuer: _Issuer, principal: Principal) -> None:
        check = issuer.config.revocation_check
        if check is None:
            return
        result = check(principal)
        if inspect.isawaitable(result):
            # A coroutine cannot be awaited here: refuse rather than skip the check.
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise InvalidToken("revocation check unavailable")
        if result:
            raise InvalidToken("token revoked")
