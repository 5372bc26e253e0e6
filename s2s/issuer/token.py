"""The token endpoint (RFC 6749 §4.4 client credentials), independent of any HTTP framework.

Input: the raw body, its content type and the ``Authorization`` header. Output: a
:class:`TokenResponse` (status, JSON body, headers). Every refusal is an :class:`OAuthError` with
its RFC 6749 §5.2 code; :meth:`TokenEndpoint.process` turns anything else into a bodyless 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from s2s.clock import Clock, system_clock
from s2s.errors import S2SError
from s2s.issuer.assertion import (
    JWT_BEARER_ASSERTION_TYPE,
    AssertionVerifier,
    InMemoryReplayCache,
    InvalidAssertion,
    ReplayCache,
    assertion_subject,
)
from s2s.issuer.clients import SCOPE_TOKEN, Client, ClientRegistry, SecretVerifier
from s2s.issuer.keyring import KeyManager
from s2s.issuer.metrics import IssuerMetrics
from s2s.issuer.minter import Minter
from s2s.issuer.ratelimit import RateLimiter, TokenBucketLimiter
from s2s.issuer.settings import IssuerSettings
from s2s.keys.signing import LocalSigner, Signer

__all__ = [
    "NO_STORE",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "OAuthError",
    "ServerError",
    "SlowDown",
    "TemporarilyUnavailable",
    "TokenEndpoint",
    "TokenResponse",
    "UnsupportedGrantType",
    "parse_form",
]

log = logging.getLogger("s2s.issuer.token")

NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 32
MAX_VALUE = 8192
# Parameters that never carry a credential: a body made only of these may be remembered.
_PLAIN_PARAMS = frozenset({"grant_type", "audience", "resource", "scope", "client_id"})
_MAX_REMEMBERED_BODY = 1024
_MAX_REMEMBERED_BODIES = 256


@dataclass(frozen=True, slots=True)
class TokenResponse:
    status: int
    body: bytes = field(repr=False)
    headers: Mapping[str, str]


class OAuthError(S2SError):
    """The token request was refused (RFC 6749 §5.2)."""

    error = "invalid_request"
    status_code = 400

    def __init__(self, description: str = "", *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.headers = dict(headers or {})

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}

    def response(self) -> TokenResponse:
        body = json.dumps(self.to_json(), separators=(",", ":")).encode()
        return TokenResponse(self.status_code, body, {**NO_STORE, **self.headers})


class InvalidRequest(OAuthError):
    """The request is malformed."""

    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed."""

    error = "invalid_client"
    status_code = 401

    def __init__(self, description: str = "client authentication failed", *, realm: str = "s2s") -> None:
        super().__init__(description, headers={"WWW-Authenticate": f'Basic realm="{realm}", charset="UTF-8"'})


class InvalidGrant(OAuthError):
    """The grant is invalid."""

    error = "invalid_grant"


class UnsupportedGrantType(OAuthError):
    """Only client_credentials is supported."""

    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    """The requested scope is invalid or not allowed for this client."""

    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """The requested audience or resource is invalid or not allowed for this client (RFC 8707)."""

    error = "invalid_target"


class SlowDown(OAuthError):
    """Too many token requests for this client."""

    error = "slow_down"
    status_code = 429

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"rate limit exceeded; retry in {seconds}s", headers={"Retry-After": str(seconds)})


class TemporarilyUnavailable(OAuthError):
    """No signing key is loaded yet."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str = "no signing key is loaded yet") -> None:
        super().__init__(description, headers={"Retry-After": "5"})


class ServerError(OAuthError):
    """The issuer failed; the details are in its log, not in the response."""

    error = "server_error"
    status_code = 500

    def __init__(self) -> None:
        super().__init__("internal error")


def parse_form(body: bytes, content_type: str | None, *, max_bytes: int = 16 * 1024) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body, strictly: anything else is ``invalid_request``.

    Empty values are dropped (RFC 6749 §3.1: a parameter without a value is omitted).
    """
    media, _, params = (content_type or "").partition(";")
    if media.strip().lower() != FORM_TYPE:
        raise InvalidRequest(f"the token request must be {FORM_TYPE}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise InvalidRequest("the token request must be UTF-8")
    if len(body) > max_bytes:
        raise InvalidRequest("the token request is too large")
    try:
        text = body.decode("utf-8")
        # parse_qsl's own limit, counted the same way: 1 + the number of separators.
        if text and text.count("&") >= MAX_FIELDS:
            raise ValueError
        form: dict[str, list[str]] = {}
        for piece in text.split("&"):
            if not piece:
                continue
            raw_name, _, raw_value = piece.partition("=")
            name = _form_unquote(raw_name)  # decoded even for a dropped empty value, as before
            if raw_value:
                form.setdefault(name, []).append(_form_unquote(raw_value))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the token request body is not valid form data") from None
    return form


def _form_unquote(text: str) -> str:
    """One name or value, decoded exactly as ``parse_qsl(..., errors="strict")`` does.

    The common case (no ``+`` and no ``%``) returns the text itself without a call into
    :mod:`urllib.parse`; invalid UTF-8 after percent-decoding raises ``UnicodeDecodeError``.
    """
    if "+" in text:
        text = text.replace("+", " ")
    if "%" in text:
        text = unquote(text, errors="strict")
    return text


def _token_body(token: str, expires_in: int, scope: str) -> bytes:
    """The RFC 6749 §5.1 body: the bytes ``json.dumps(..., separators=(",", ":"))`` gives, built
    without a generic encoder (strings still escaped by the json module's own C function)."""
    tail = f',"scope":{_json_string(scope)}}}' if scope else "}"
    return (
        f'{{"access_token":{_json_string(token)},"token_type":"Bearer","expires_in":{int(expires_in)}{tail}'
    ).encode()


def _single(form: Mapping[str, list[str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, values in form.items():
        if len(values) > 1:
            raise InvalidRequest(
                f"parameter {name!r} is repeated" if name.isidentifier() else "a parameter is repeated"
            )
        if values:
            if len(values[0]) > MAX_VALUE:
                raise InvalidRequest("a parameter is too long")
            params[name] = values[0]
    return params


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient(
            "unsupported authentication scheme: use Basic, client_secret_post or private_key_jwt"
        )
    credentials = credentials.strip()
    try:
        if len(credentials) > 4 * MAX_VALUE:
            raise ValueError
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise ValueError
        # RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
        client_id = unquote_plus(raw_id, errors="strict")
        secret = unquote_plus(raw_secret, errors="strict")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    if not client_id or not secret:
        raise InvalidClient("malformed Basic credentials")
    return client_id, secret


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
    params: dict[str, str]
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
        self.minter = Minter(settings.issuer, signer or LocalSigner(), clock=clock)
        self.secrets = secrets or SecretVerifier(clock)
        self.limiter = limiter or TokenBucketLimiter(settings.rate_limit, settings.rate_burst, clock=clock)
        self._bodies: dict[bytes, tuple[str | None, dict[str, str]]] = {}
        self.assertions = AssertionVerifier(
            (settings.token_endpoint, settings.issuer),
            replay or InMemoryReplayCache(clock),
            clock=clock,
            max_lifetime=settings.assertion_max_lifetime,
        )

    # -- the two phases --------------------------------------------------------------------------
    def begin(self, form: Mapping[str, list[str]], authorization: str | None) -> _Pending:
        return self._begin(_single(form), authorization)

    def _params(self, body: bytes, content_type: str | None) -> dict[str, str]:
        """``_single(parse_form(...))``, remembered for bodies that carry no credentials.

        A busy client sends the same few bodies (grant type, audience, scope) again and again; the
        credentials travel in the Authorization header. A body is remembered only when every
        parameter is one of :data:`_PLAIN_PARAMS` (so no secret or assertion is ever kept), with
        the content type it came with; the table is small and emptied when full. The result is
        shared between requests and never mutated.
        """
        hit = self._bodies.get(body)
        if hit is not None and hit[0] == content_type:
            return hit[1]
        params = _single(parse_form(body, content_type, max_bytes=self.settings.max_body_bytes))
        if len(body) <= _MAX_REMEMBERED_BODY and _PLAIN_PARAMS.issuperset(params):
            if len(self._bodies) >= _MAX_REMEMBERED_BODIES:
                self._bodies.clear()
            self._bodies[body] = (content_type, params)
        return params

    def _begin(self, params: dict[str, str], authorization: str | None) -> _Pending:
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise InvalidRequest("grant_type is required")
        if grant_type != "client_credentials":
            raise UnsupportedGrantType("only grant_type=client_credentials is supported")

        methods = []
        if authorization is not None:
            methods.append("client_secret_basic")
        if "client_secret" in params:
            methods.append("client_secret_post")
        if "client_assertion" in params or "client_assertion_type" in params:
            methods.append("private_key_jwt")
        if len(methods) > 1:
            raise InvalidRequest("use exactly one client authentication method")
        if not methods:
            raise InvalidClient("client authentication is required")

        secret: str | None = None
        assertion: str | None = None
        form_id = params.get("client_id")
        if methods[0] == "client_secret_basic":
            assert authorization is not None
            client_id, secret = _basic_credentials(authorization)
            if form_id is not None and form_id != client_id:
                raise InvalidRequest("client_id does not match the authenticated client")
        elif methods[0] == "client_secret_post":
            if form_id is None:
                raise InvalidRequest("client_id is required with client_secret")
            client_id, secret = form_id, params["client_secret"]
        else:
            if params.get("client_assertion_type") != JWT_BEARER_ASSERTION_TYPE:
                if "client_assertion_type" not in params:
                    raise InvalidRequest("client_assertion_type is required with client_assertion")
                raise InvalidClient(f"client_assertion_type must be {JWT_BEARER_ASSERTION_TYPE}")
            assertion = params.get("client_assertion")
            if assertion is None:
                raise InvalidRequest("client_assertion is required with client_assertion_type")
            try:
                client_id = assertion_subject(assertion)
            except InvalidAssertion as exc:
                raise InvalidClient(exc.description) from None
            if form_id is not None and form_id != client_id:
                raise InvalidClient("client_id does not match the assertion issuer")

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

    def finish(self, pending: _Pending) -> TokenResponse:
        """Audience, scope, signing: after client authentication succeeded."""
        client, params = pending.client, pending.params
        audience = self._audience(client, params)
        scopes = self._scopes(client, params.get("scope"))
        key = self.keys.current
        if key is None:
            raise TemporarilyUnavailable()
        ttl = min(self.settings.token_ttl, self.settings.max_token_ttl, client.max_ttl or math.inf)
        # Minter.mint without its MintedToken record: nothing here needs more than the body.
        claims = self.minter.claims(client, audience, scopes, ttl)
        token = self.minter.sign(key, claims)
        self.metrics.issued()
        body = _token_body(token, claims["exp"] - claims["iat"], claims.get("scope", ""))
        return TokenResponse(200, body, NO_STORE)

    @staticmethod
    def _audience(client: Client, params: Mapping[str, str]) -> str:
        audience, resource = params.get("audience"), params.get("resource")
        if audience is not None and resource is not None and audience != resource:
            raise InvalidRequest("send audience or resource, not both")
        if resource is not None and not _is_absolute_uri(resource):
            raise InvalidTarget("resource must be an absolute URI without a fragment")
        requested = audience if audience is not None else resource
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
        if raw is None or not raw.strip(" "):
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

    # -- entry points --------------------------------------------------------------------------
    def handle(self, form: Mapping[str, list[str]], authorization: str | None) -> TokenResponse:
        """Synchronous: a cache-miss secret check runs the slow hash inline."""
        pending = self.begin(form, authorization)
        if pending.secret is not None and not self.secrets.verify_slow(pending.client, pending.secret):
            raise InvalidClient()
        return self.finish(pending)

    async def handle_async(
        self,
        form: Mapping[str, list[str]],
        authorization: str | None,
        run_sync: Callable[[Callable[[], bool]], Awaitable[bool]],
    ) -> TokenResponse:
        """Like :meth:`handle`, but a slow hash goes through ``run_sync`` (a worker thread)."""
        pending = self.begin(form, authorization)
        if pending.secret is not None:
            client, secret = pending.client, pending.secret
            if not await run_sync(lambda: self.secrets.verify_slow(client, secret)):
                raise InvalidClient()
        return self.finish(pending)

    def error_response(self, exc: BaseException) -> TokenResponse:
        """The response for any exception: OAuth errors as themselves, anything else a bare 500."""
        if not isinstance(exc, OAuthError):
            # The message of an unexpected error is not trusted to be secret-free: type only.
            log.error("token endpoint fault: %s", type(exc).__name__)
            exc = ServerError()
        else:
            log.debug("token request refused: %s: %s", exc.error, exc.description)
        self.metrics.error(exc.error)
        return exc.response()

    async def process(
        self,
        body: bytes,
        content_type: str | None,
        authorization: str | None,
        run_sync: Callable[[Callable[[], bool]], Awaitable[bool]],
    ) -> TokenResponse:
        """Never raises: the one call an HTTP adapter makes."""
        try:
            # handle_async inlined: one coroutine less per request, and no await at all when the
            # secret is in the cache (the usual case), so nothing leaves the event loop.
            pending = self._begin(self._params(body, content_type), authorization)
            if pending.secret is not None:
                client, secret = pending.client, pending.secret
                if not await run_sync(lambda: self.secrets.verify_slow(client, secret)):
                    raise InvalidClient()
            return self.finish(pending)
        except Exception as exc:
            return self.error_response(exc)
