"""The token endpoint (RFC 6749 §4.4 client credentials), independent of any HTTP framework.

Input: the raw body, its content type and the ``Authorization`` header. Output: a
:class:`TokenResponse` (status, JSON body, headers). This is the one place where failures become
OAuth answers: refusals are :class:`~s2s.issuer.errors.OAuthError` with their RFC 6749 §5.2 code;
the infrastructure's own errors (registry not loaded, state store or signer unavailable) become
``503 temporarily_unavailable``; anything else a bodyless 500 (:meth:`TokenEndpoint.process`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_string
from urllib.parse import urlsplit

from s2s.clock import Clock, system_clock
from s2s.issuer._form import FormReader, presented_credentials
from s2s.issuer._registry import ClientRegistry
from s2s.issuer._secret_hash import SecretVerifier
from s2s.issuer.assertion import AssertionVerifier, InMemoryReplayCache, InvalidAssertion, ReplayCache
from s2s.issuer.clients import Client
from s2s.issuer.errors import (
    InvalidClient,
    InvalidScope,
    InvalidTarget,
    InvalidTokenRequest,
    OAuthError,
    RegistryUnavailable,
    ServerError,
    SlowDown,
    StateUnavailable,
    TemporarilyUnavailable,
)
from s2s.issuer.keyring import KeyManager
from s2s.issuer.metrics import IssuerMetrics
from s2s.issuer.minter import Minter
from s2s.issuer.ratelimit import RateLimiter, TokenBucketLimiter
from s2s.issuer.settings import IssuerSettings
from s2s.keys.kms import SigningUnavailable
from s2s.keys.signing import LocalSigner, Signer
from s2s.oauth import SCOPE_TOKEN

__all__ = ["NO_STORE", "TokenEndpoint", "TokenResponse", "error_response"]

log = logging.getLogger("s2s.issuer.token")

NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Entra ID's convention, the only way MSAL names a resource in client credentials.
DEFAULT_SCOPE_SUFFIX = "/.default"
# Infrastructure errors whose description is safe and meant for the caller, answered as 503.
_UNAVAILABLE = (StateUnavailable, RegistryUnavailable)


@dataclass(frozen=True, slots=True)
class TokenResponse:
    status: int
    body: bytes = field(repr=False)
    headers: Mapping[str, str]


def error_response(exc: OAuthError) -> TokenResponse:
    """The RFC 6749 §5.2 response for a refusal."""
    body = json.dumps(exc.to_json(), separators=(",", ":")).encode()
    return TokenResponse(exc.status_code, body, {**NO_STORE, **exc.headers})


def _token_body(token: str, expires_in: int, scope: str) -> bytes:
    """The RFC 6749 §5.1 body: the bytes ``json.dumps(..., separators=(",", ":"))`` gives, built
    without a generic encoder (strings still escaped by the json module's own C function)."""
    tail = f',"scope":{_json_string(scope)}}}' if scope else "}"
    return (
        f'{{"access_token":{_json_string(token)},"token_type":"Bearer","expires_in":{int(expires_in)}{tail}'
    ).encode()


def _is_absolute_uri(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme and parts.netloc) and not parts.fragment and "#" not in value


@dataclass(slots=True)
class _Pending:
    """An identified client whose secret (if any) still has to be checked."""

    client: Client
    params: Mapping[str, str]
    secret: str | None = field(default=None, repr=False)


class TokenEndpoint:
    """Issues client-credentials tokens. Thread-safe; cheap per request once a secret is cached.

    Order of checks: request shape and grant type, then client identification, the per-client
    rate limit (before any slow secret hash, so guessing is throttled per client), then client
    authentication, then audience and scope (after authentication, so unauthenticated callers
    learn nothing about a client's configuration).
    """

    def __init__(
        self,
        settings: IssuerSettings,
        registry: ClientRegistry,
        keys: KeyManager,
        *,
        clock: Clock = system_clock,
        signer: Signer | None = None,
        replay: ReplayCache | None = None,
        limiter: RateLimiter | None = None,
        secrets: SecretVerifier | None = None,
        metrics: IssuerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.keys = keys
        self.metrics = metrics or keys.metrics
        self.minter = Minter(
            settings.issuer, signer or LocalSigner(), clock=clock, claim_aliases=settings.claim_aliases
        )
        self.secrets = secrets or SecretVerifier(clock)
        self.limiter = limiter or TokenBucketLimiter(settings.rate_limit, settings.rate_burst, clock=clock)
        self._params = FormReader(settings.max_body_bytes)
        self.assertions = AssertionVerifier(
            (settings.token_endpoint, settings.issuer),
            replay or InMemoryReplayCache(clock),
            clock=clock,
            max_lifetime=settings.assertion_max_lifetime,
        )

    # -- the two phases --------------------------------------------------------------------------
    def _authenticate(self, params: Mapping[str, str], authorization: str | None) -> _Pending:
        """Identify the client and check what can be checked without the slow hash."""
        client_id, secret, assertion = presented_credentials(params, authorization)
        client = self.registry.get(client_id)
        if client is None:
            raise InvalidClient()
        wait = self.limiter.acquire(client.client_id)
        if wait > 0:
            raise SlowDown(wait)
        if assertion is not None:
            try:
                self.assertions.verify(assertion, client)
            except InvalidAssertion as exc:
                raise InvalidClient(exc.description) from None
            return _Pending(client, params)
        if client.secret_hash is None:
            raise InvalidClient("this client authenticates with private_key_jwt")
        if self.secrets.cached(client, secret or ""):
            return _Pending(client, params)
        return _Pending(client, params, secret)

    def _issue(self, pending: _Pending) -> TokenResponse:
        """Audience, scope, signing: after client authentication succeeded."""
        client, params = pending.client, pending.params
        audience = self._audience(client, params)
        scopes = self._scopes(client, params.get("scope"))
        key = self.keys.current
        if key is None:
            raise TemporarilyUnavailable()
        ttl = min(self.settings.token_ttl, self.settings.max_token_ttl, client.max_ttl or math.inf)
        claims = self.minter.claims(client, audience, scopes, ttl)
        try:
            token = self.minter.sign(key, claims)
        except SigningUnavailable as exc:
            # KMS down, throttled or the key disabled: the request may succeed later, and the
            # caller learns nothing about the signing backend (the detail goes to the log only).
            log.error("signing with key %s failed: %s", key.kid, exc.description)
            raise TemporarilyUnavailable("signing is temporarily unavailable") from None
        self.metrics.issued()
        granted = claims.get("scope", "")
        if self._default_audience(params.get("scope")) is not None:
            # The grant named as it was asked for (`<audience>/.default`, RFC 6749 §5.1): MSAL
            # caches a token under the scope of the response and looks it up by the one it sent.
            granted = params["scope"].strip(" ")
        body = _token_body(token, claims["exp"] - claims["iat"], granted)
        return TokenResponse(200, body, NO_STORE)

    @staticmethod
    def _default_audience(raw: str | None) -> str | None:
        """The audience named by an Entra-style ``scope=<audience>/.default`` (MSAL's only way to
        name a resource in client credentials), or None when the scope has no ``/.default`` token.
        Such a scope must be the only one: mixed with others it would be ambiguous."""
        if raw is None or DEFAULT_SCOPE_SUFFIX not in raw:
            return None
        tokens = [t for t in raw.split(" ") if t]
        if (
            len(tokens) != 1
            or not tokens[0].endswith(DEFAULT_SCOPE_SUFFIX)
            or not SCOPE_TOKEN.match(tokens[0])
        ):
            raise InvalidScope("a <audience>/.default scope must be the only scope requested")
        audience = tokens[0][: -len(DEFAULT_SCOPE_SUFFIX)]
        if not audience:
            raise InvalidScope("scope is malformed")
        return audience

    @staticmethod
    def _audience(client: Client, params: Mapping[str, str]) -> str:
        audience, resource = params.get("audience"), params.get("resource")
        if audience is not None and resource is not None and audience != resource:
            raise InvalidTokenRequest("send audience or resource, not both")
        if resource is not None and not _is_absolute_uri(resource):
            raise InvalidTarget("resource must be an absolute URI without a fragment")
        requested = audience if audience is not None else resource
        by_scope = TokenEndpoint._default_audience(params.get("scope"))
        if by_scope is not None:
            if requested is not None and requested != by_scope:
                raise InvalidTokenRequest("the /.default scope names another audience than the request")
            if by_scope not in client.audiences:
                raise InvalidScope("the /.default scope names an audience not allowed for this client")
            return by_scope
        if requested is None:
            if len(client.audiences) == 1:
                return client.audiences[0]
            raise InvalidTarget("this client may call several audiences: send audience or resource")
        if requested not in client.audiences:
            raise InvalidTarget("the requested audience is not allowed for this client")
        return requested

    @staticmethod
    def _scopes(client: Client, raw: str | None) -> tuple[str, ...]:
        # RFC 6749 §3.3 lets the server apply a default when scope is omitted: all allowed scopes.
        # `<audience>/.default` (checked by _audience) asks for that default explicitly.
        if raw is None or not raw.strip(" ") or TokenEndpoint._default_audience(raw) is not None:
            return client.scopes
        if raw in client.scopes:  # one allowed scope, already a valid token (the registry checks)
            return (raw,)
        requested: list[str] = []
        for token in raw.split(" "):
            if not token:
                continue
            if not SCOPE_TOKEN.match(token):
                raise InvalidScope("scope is malformed")
            if token not in requested:
                requested.append(token)
        allowed = set(client.scopes)
        if not all(s in allowed for s in requested):
            raise InvalidScope("a requested scope is not allowed for this client")
        return tuple(requested)

    # -- the entry point -------------------------------------------------------------------------
    def error_response(self, exc: BaseException) -> TokenResponse:
        """The response for any exception: OAuth errors as themselves, the infrastructure's
        "try again later" errors as 503, anything else a bare 500."""
        if isinstance(exc, _UNAVAILABLE):
            exc = TemporarilyUnavailable(exc.description)
        if not isinstance(exc, OAuthError):
            # The message of an unexpected error is not trusted to be secret-free: type only.
            log.error("token endpoint fault: %s", type(exc).__name__)
            exc = ServerError()
        else:
            log.debug("token request refused: %s: %s", exc.error, exc.description)
        self.metrics.error(exc.error)
        return error_response(exc)

    async def process(
        self,
        body: bytes,
        content_type: str | None,
        authorization: str | None,
        run_sync: Callable[[Callable[[], bool]], Awaitable[bool]],
    ) -> TokenResponse:
        """Never raises: the one call an HTTP adapter makes. A slow secret hash (a secret not seen
        recently) goes through ``run_sync`` (a worker thread); with the secret in the cache (the
        usual case) there is no await at all, so nothing leaves the event loop."""
        try:
            pending = self._authenticate(self._params(body, content_type), authorization)
            if pending.secret is not None:
                client, secret = pending.client, pending.secret
                if not await run_sync(lambda: self.secrets.verify_slow(client, secret)):
                    raise InvalidClient()
            return self._issue(pending)
        except Exception as exc:
            return self.error_response(exc)
