"""TokenVerifier (async) and SyncTokenVerifier: a token in, a :class:`Principal` or a refusal out.

The order of the checks, per token:

1. the verified-token cache (a hit costs no crypto; see :mod:`s2s.verify._cache`);
2. :func:`s2s.jose.parse_compact`: sizes, base64url, header shape, allowed parameters;
3. the payload's ``iss`` selects the configured issuer (exact match, or an Entra tenant template
   with an allowed tenant); a token naming an issuer that is not configured is refused before any
   I/O, and only that issuer's keys are ever tried;
4. that issuer's ``typ`` and header-parameter rules (its :class:`~s2s.jose.HeaderPolicy`);
5. the key by ``kid`` from that issuer's JWKS source, its pinned alg equal to the token's alg,
   the signature (``cryptography``, through :mod:`s2s.jose`);
6. the claims (:class:`s2s.verify._claims.ClaimsPolicy`), then the revocation hook.

The rules are written once, as generator flows (:meth:`_Core.verify_flow`,
:meth:`_Core.id_token_flow`) that yield their only two kinds of I/O (:class:`NeedKey`: a key that
is not in a fresh key set; :class:`CheckRevocation`: the revocation hook) and receive the result.
:class:`TokenVerifier` and :class:`SyncTokenVerifier` are the two thin drivers, as httpx's
``auth_flow``. A repeated token without a revocation hook never enters a flow.

A flow hands its :class:`Principal` over in the ``outcome`` list it was given, and returns None:
a generator's return value reaches its caller only inside a StopIteration, whose raising and
catching (exception, traceback, frame object) cost about 1.7k instructions per token, as much as
all the verifier's other work beyond the crypto floor (see ``bench/README.md``). ``next(flow,
None)`` returns None, with no exception at all, when the flow ended without I/O: the usual cold
path.

Whatever fails, and whatever is raised on the way, the caller gets an :class:`InvalidToken`
subclass with a short fixed description (or :class:`KeysUnavailable` when no usable keys exist),
raised without any exception chain or traceback that could carry token material.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from s2s.clock import Clock, SystemClock, system_clock
from s2s.errors import ConfigError
from s2s.jose import (
    AlgorithmRejected,
    HeaderPolicy,
    JoseError,
    MalformedJWS,
    MissingKeyId,
    ParsedJWS,
    SignatureInvalid,
    TokenLimits,
    TypeRejected,
    VerifyKey,
    check_signature,
    loads_object,
    parse_compact,
)
from s2s.observe import HUB, Observer
from s2s.verify._cache import CacheEntry, VerifiedTokenCache
from s2s.verify._claims import ClaimsPolicy
from s2s.verify._config import TENANT_PLACEHOLDER, RevocationCheck, VerifierConfig
from s2s.verify._jwks import AsyncJWKSSource, JWKSSourceCore, SourceInfo, SyncJWKSSource
from s2s.verify._principal import Principal, from_verified_claims
from s2s.verify.errors import (
    BadSignature,
    DisallowedAlgorithm,
    InvalidToken,
    KeysUnavailable,
    MalformedToken,
    TokenRevoked,
    UnsupportedHeader,
    UntrustedIssuer,
    VerificationError,
    WrongTokenType,
)

__all__ = ["CheckRevocation", "NeedKey", "SyncTokenVerifier", "TokenVerifier"]

log = logging.getLogger("s2s.verify")

_ID_TOKEN_TYPES = frozenset({"", "jwt"})
# What the JOSE core's refusals mean for a token (same description).
_JOSE_REFUSALS: dict[type[JoseError], type[InvalidToken]] = {
    MalformedJWS: MalformedToken,
    MissingKeyId: MalformedToken,
    TypeRejected: WrongTokenType,
    AlgorithmRejected: DisallowedAlgorithm,
    SignatureInvalid: BadSignature,
}

S = TypeVar("S", bound=JWKSSourceCore)


@dataclass(frozen=True, slots=True)
class NeedKey(Generic[S]):
    """A flow step: the key ``kid`` of ``source``, which may fetch (send back the VerifyKey)."""

    source: S
    kid: str


@dataclass(frozen=True, slots=True)
class CheckRevocation:
    """A flow step: ask the revocation hook about ``principal`` (send back True if revoked)."""

    check: RevocationCheck
    principal: Principal


StepResult = VerifyKey | bool
# Yields its steps, receives their results, puts its Principal in its ``outcome`` list.
VerifyFlow = Generator[NeedKey[S] | CheckRevocation, StepResult, None]


@dataclass(slots=True)
class _Issuer(Generic[S]):
    config: VerifierConfig
    source: S
    claims: ClaimsPolicy
    header: HeaderPolicy
    token_types: frozenset[str]
    # False when parse_compact's check (against every issuer's extra parameters) is already
    # this issuer's own check: only one issuer, or all issuers allowing the same parameters.
    check_header: bool = True
    revocation: RevocationCheck | None = None
    prefix: str = ""
    suffix: str = ""


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


def _refusal(exc: Exception) -> VerificationError:
    """The refusal to raise for ``exc``: logged by type and description, stripped of its chain and
    traceback (their frames and messages could hold parts of the token)."""
    if isinstance(exc, VerificationError):
        error = exc
    elif isinstance(exc, JoseError):
        error = _JOSE_REFUSALS.get(type(exc), UnsupportedHeader)(exc.description)
    else:
        # The type only: messages of json/cryptography errors may quote parts of the token.
        log.debug("token refused after an unexpected %s", type(exc).__name__)
        error = InvalidToken("token invalid")
    error.__cause__ = error.__context__ = None
    error.__traceback__ = None
    log.info("token refused: %s (%s)", error.description, type(error).__name__)
    return error


def _unavailable(exc: Exception) -> VerificationError:
    """A key lookup's failure: a refusal stands; anything else is ours (503), not the caller's."""
    if isinstance(exc, VerificationError):
        return exc
    log.warning("signing key lookup failed unexpectedly (%s): answering 503", type(exc).__name__)
    return KeysUnavailable()


class _Core(Generic[S]):
    """Everything but the I/O, shared by both verifiers."""

    def __init__(
        self,
        configs: list[VerifierConfig],
        sources: list[S],
        clock: Clock,
        cache_size: int,
        observer: Observer = HUB,
    ) -> None:
        self._clock = clock
        self.observer = observer
        for source in sources:
            source.observer = observer
        # The system clock is read directly on the per-token path (no Python frame in between).
        self._now = time.time if type(clock) is SystemClock else clock.now
        self.cache = VerifiedTokenCache(clock, cache_size, observer=observer)
        self._exact: dict[str, _Issuer[S]] = {}
        self._templates: list[_Issuer[S]] = []
        self.issuers: list[_Issuer[S]] = []
        extra: set[str] = set()
        for config, source in zip(configs, sources, strict=True):
            header = config.header_policy
            issuer = _Issuer(
                config=config,
                source=source,
                claims=ClaimsPolicy(config),
                header=header,
                token_types=header.types or frozenset(),
                revocation=config.revocation_check,
            )
            extra.update(config.extra_header_params)
            if TENANT_PLACEHOLDER in config.issuer:
                issuer.prefix, _, issuer.suffix = config.issuer.partition(TENANT_PLACEHOLDER)
                self._templates.append(issuer)
            else:
                self._exact[config.issuer] = issuer
            self.issuers.append(issuer)
        # parse_compact checks the members every issuer allows; an issuer allowing fewer checks
        # its own after the token named it.
        self._header = HeaderPolicy.closed(extra)
        for issuer in self.issuers:
            issuer.check_header = issuer.header.allowed != self._header.allowed
        # Only then can a cache entry need the full path (its hook asked again) while valid.
        self.revocable = any(issuer.revocation is not None for issuer in self.issuers)
        self._limits = TokenLimits(
            max_token=max(c.limits.max_token for c in configs),
            max_header=max(c.limits.max_header for c in configs),
            max_payload=max(c.limits.max_payload for c in configs),
            max_signature=max(c.limits.max_signature for c in configs),
        )

    def _parse(
        self, token: str, *, id_token: bool = False
    ) -> tuple[ParsedJWS, _Issuer[S], dict[str, Any], str | None]:
        parsed = parse_compact(token, limits=self._limits, policy=self._header)
        try:
            claims = loads_object(parsed.payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedToken("malformed token payload") from None
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise UntrustedIssuer()
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
                raise UntrustedIssuer()
        if issuer.check_header:
            issuer.header.check_members(parsed.header)
        typ = parsed.typ or ""
        if typ not in (_ID_TOKEN_TYPES if id_token else issuer.token_types):
            raise WrongTokenType()
        return parsed, issuer, claims, tenant

    def verify_flow(self, token: str, entry: CacheEntry | None, outcome: list[Principal]) -> VerifyFlow[S]:
        """An access token's verification; the driver serves its steps. ``entry``: the token's
        cache entry, when the driver found one (it serves entries without revocation itself)."""
        name = "-"  # the configured issuer, once the token named one (a metrics label)
        try:
            if entry is not None:
                name = entry.source.issuer
                # A cached token whose issuer has a revocation hook (else the driver served it).
                if entry.revocation is not None and (
                    yield CheckRevocation(entry.revocation, entry.principal)
                ):
                    raise TokenRevoked()
                self.observer.verified(name, None, True)
                outcome.append(entry.principal)
                return
            parsed, issuer, claims, tenant = self._parse(token)
            name = issuer.config.issuer
            kid = parsed.kid
            if kid is None:  # the header policy requires it; kept explicit for the type
                raise MalformedToken("missing key id")
            key = issuer.source.fresh_key(kid)
            if key is None:
                sent = yield NeedKey(issuer.source, kid)
                if not isinstance(sent, VerifyKey):
                    raise TypeError("NeedKey wants a VerifyKey")
                key = sent
            check_signature(parsed, key)
            valid_until = issuer.claims.check(claims, self._now(), tenant)
            principal = from_verified_claims(claims)
            if issuer.revocation is not None and (yield CheckRevocation(issuer.revocation, principal)):
                raise TokenRevoked()
            self.cache.put(
                token,
                principal,
                valid_until,
                source=issuer.source,
                kid=kid,
                key=key,
                revocation=issuer.revocation,
            )
            self.observer.verified(name, None, False)
            outcome.append(principal)
            return
        except Exception as exc:
            error = _refusal(exc)
        self.observer.verified(name, type(error).__name__, False)
        raise error

    def id_token_flow(
        self, token: str, nonce: str | None, client_id: str | None, outcome: list[Principal]
    ) -> VerifyFlow[S]:
        """An OpenID Connect ID token's verification (not cached)."""
        try:
            parsed, issuer, claims, tenant = self._parse(token, id_token=True)
            if parsed.kid is None:
                raise MalformedToken("missing key id")
            sent = yield NeedKey(issuer.source, parsed.kid)
            if not isinstance(sent, VerifyKey):
                raise TypeError("NeedKey wants a VerifyKey")
            check_signature(parsed, sent)
            policy = ClaimsPolicy(issuer.config, id_token=True, audiences=(client_id,) if client_id else None)
            policy.check(claims, self._clock.now(), tenant)
            policy.check_id_token(claims, nonce)
            principal = from_verified_claims(claims)
            if issuer.revocation is not None and (yield CheckRevocation(issuer.revocation, principal)):
                raise TokenRevoked()
            outcome.append(principal)
            return
        except Exception as exc:
            error = _refusal(exc)
        raise error

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for issuer in self.issuers:
            c = issuer.config
            info: SourceInfo = issuer.source.describe()
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


class TokenVerifier:
    """Verifies access tokens of one or several issuers, each against its own JWKS."""

    def __init__(
        self,
        configs: VerifierConfig | Sequence[VerifierConfig],
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
        cache_size: int = 4096,
        observer: Observer | None = None,
    ) -> None:
        items = _as_list(configs)
        self._client = http_client
        self._owns_client = False
        self._clock = clock
        sources = [AsyncJWKSSource(c, self._get_client, clock) for c in items]
        self._core: _Core[AsyncJWKSSource] = _Core(items, sources, clock, cache_size, observer or HUB)
        self._observer = self._core.observer
        self._cache_get = self._core.cache.get
        self._revocable = self._core.revocable
        self._cached = self._core.cache.principal
        if type(self).verify_cached is TokenVerifier.verify_cached:
            # What the method does, bound on the instance: a reused token (the middleware asks
            # this on every request) saves a Python call. A subclass's override stays in force.
            self.verify_cached = self._cached  # type: ignore[method-assign]

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
    def cached_tokens(self) -> int:
        """Tokens in the verified-token cache now (a metrics gauge)."""
        return len(self._core.cache)

    @property
    def sources(self) -> list[AsyncJWKSSource]:
        return [i.source for i in self._core.issuers]

    def verify_cached(self, token: str) -> Principal | None:
        """The principal of a token this verifier accepted before and accepts now without any
        I/O: unexpired, the key that verified it still in its issuer's fresh key set, and no
        revocation hook to ask. None means only that :meth:`verify` must run (a token not seen
        twice yet, expired, of a changed key set, or of an issuer with a revocation hook).

        Synchronous, so that a middleware can ask it before creating a coroutine for
        :meth:`verify`: a caller reusing its token then costs a dictionary lookup and two clock
        reads. A principal returned counts as a cached verification (metrics), as in verify()."""
        return self._cached(token)

    async def verify(self, token: str) -> Principal:
        try:
            hit = self._cached(token)
            # A cached token of an issuer with a revocation hook: the flow asks the hook.
            entry = self._cache_get(token) if hit is None and self._revocable else None
        except TypeError:  # not a string (unhashable): the flow refuses it
            hit = entry = None
        if hit is not None:
            return hit
        outcome: list[Principal] = []
        flow = self._core.verify_flow(token, entry, outcome)
        with self._observer.span("s2s.verify"):
            step = next(flow, None)
            if step is not None:  # I/O needed; else the usual cold path ended in this frame
                await self._drive(flow, outcome, step)
        return outcome[0]

    async def verify_id_token(
        self, token: str, *, nonce: str | None = None, client_id: str | None = None
    ) -> Principal:
        """An OpenID Connect ID token (``typ`` absent or JWT; ``aud`` = ``client_id`` or the
        configured audiences; ``nonce`` compared when given). Access-token-only rules (claim
        assertions, forbidden claims) do not apply. ID tokens are not cached."""
        outcome: list[Principal] = []
        return await self._drive(self._core.id_token_flow(token, nonce, client_id, outcome), outcome)

    @staticmethod
    async def _drive(
        flow: VerifyFlow[AsyncJWKSSource],
        outcome: list[Principal],
        step: NeedKey[AsyncJWKSSource] | CheckRevocation | None = None,
    ) -> Principal:
        """Serve ``flow``'s steps (from ``step``, when the caller already started it) until it
        ends; its Principal."""
        if step is None:
            step = next(flow, None)
        while step is not None:
            result: StepResult = False
            error: Exception | None = None
            try:
                if isinstance(step, NeedKey):
                    result = await step.source.get_key(step.kid)
                else:
                    answer = step.check(step.principal)
                    result = bool(await answer if inspect.isawaitable(answer) else answer)
            except Exception as exc:
                error = _unavailable(exc) if isinstance(step, NeedKey) else exc
            # Thrown back in outside the except block: the refusal is chained to nothing.
            step = _resume(flow, result, error)
        return outcome[0]


class SyncTokenVerifier:
    """The blocking twin of :class:`TokenVerifier` (same rules, httpx.Client, thread-safe)."""

    def __init__(
        self,
        configs: VerifierConfig | Sequence[VerifierConfig],
        *,
        http_client: httpx.Client | None = None,
        clock: Clock = system_clock,
        cache_size: int = 4096,
        observer: Observer | None = None,
    ) -> None:
        items = _as_list(configs)
        self._client = http_client
        self._owns_client = False
        self._clock = clock
        sources = [SyncJWKSSource(c, self._get_client, clock) for c in items]
        self._core: _Core[SyncJWKSSource] = _Core(items, sources, clock, cache_size, observer or HUB)
        self._observer = self._core.observer
        self._cache_get = self._core.cache.get
        self._revocable = self._core.revocable
        self._cached = self._core.cache.principal
        if type(self).verify_cached is SyncTokenVerifier.verify_cached:
            # What the method does, bound on the instance: a reused token (the middleware asks
            # this on every request) saves a Python call. A subclass's override stays in force.
            self.verify_cached = self._cached  # type: ignore[method-assign]

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
    def cached_tokens(self) -> int:
        """Tokens in the verified-token cache now (a metrics gauge)."""
        return len(self._core.cache)

    @property
    def sources(self) -> list[SyncJWKSSource]:
        return [i.source for i in self._core.issuers]

    def verify_cached(self, token: str) -> Principal | None:
        """See :meth:`TokenVerifier.verify_cached`."""
        return self._cached(token)

    def verify(self, token: str) -> Principal:
        try:
            hit = self._cached(token)
            # A cached token of an issuer with a revocation hook: the flow asks the hook.
            entry = self._cache_get(token) if hit is None and self._revocable else None
        except TypeError:  # not a string (unhashable): the flow refuses it
            hit = entry = None
        if hit is not None:
            return hit
        outcome: list[Principal] = []
        flow = self._core.verify_flow(token, entry, outcome)
        with self._observer.span("s2s.verify"):
            step = next(flow, None)
            if step is not None:  # I/O needed; else the usual cold path ended in this frame
                self._drive(flow, outcome, step)
        return outcome[0]

    def verify_id_token(
        self, token: str, *, nonce: str | None = None, client_id: str | None = None
    ) -> Principal:
        """See :meth:`TokenVerifier.verify_id_token`."""
        outcome: list[Principal] = []
        return self._drive(self._core.id_token_flow(token, nonce, client_id, outcome), outcome)

    @staticmethod
    def _drive(
        flow: VerifyFlow[SyncJWKSSource],
        outcome: list[Principal],
        step: NeedKey[SyncJWKSSource] | CheckRevocation | None = None,
    ) -> Principal:
        """See :meth:`TokenVerifier._drive`."""
        if step is None:
            step = next(flow, None)
        while step is not None:
            result: StepResult = False
            error: Exception | None = None
            try:
                result = step.source.get_key(step.kid) if isinstance(step, NeedKey) else _revoked_now(step)
            except Exception as exc:
                error = _unavailable(exc) if isinstance(step, NeedKey) else exc
            step = _resume(flow, result, error)
        return outcome[0]


def _resume(
    flow: VerifyFlow[S], result: StepResult, error: Exception | None
) -> NeedKey[S] | CheckRevocation | None:
    """Send a step's result (or throw its error) into ``flow``: its next step, None once it ended."""
    try:
        return flow.send(result) if error is None else flow.throw(error)
    except StopIteration:
        return None


def _revoked_now(step: CheckRevocation) -> bool:
    result = step.check(step.principal)
    if inspect.isawaitable(result):
        # A coroutine cannot be awaited here: refuse rather than skip the check.
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise InvalidToken("revocation check unavailable")
    return bool(result)
