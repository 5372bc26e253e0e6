"""The token endpoint (RFC 6749 §4.4 client credentials), independent of any HTTP framework.

Input: the raw body, its content type and the ``Authorization`` header. Output: a
:class:`TokenResponse` (status, JSON body, headers). This is the one place where failures become
OAuth answers: refusals are :class:`~s2s.issuer.errors.OAuthError` with their RFC 6749 §5.2 code;
the infrastructure's own errors (registry not loaded, state store or signer unavailable) become
``503 temporarily_unavailable``; anything else a bodyless 500 (:meth:`TokenEndpoint.process`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_string
from urllib.parse import urlsplit

from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.issuer._assertion import (
    AssertionVerifier,
    InMemoryReplayCache,
    InvalidAssertion,
    ReplayCache,
    assertion_subject,
)
from s2s.issuer._clients import Client
from s2s.issuer._federation_verify import FederationVerifier
from s2s.issuer._form import FormReader, presented_credentials
from s2s.issuer._keyring import KeyManager
from s2s.issuer._minter import Minter
from s2s.issuer._ratelimit import RateLimiter, TokenBucketLimiter, failure_key
from s2s.issuer._registry import ClientRegistry
from s2s.issuer._secret_hash import SecretVerifier, dummy_check, hash_secret
from s2s.issuer._settings import IssuerSettings
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
from s2s.jose import generate_private_key, public_key_to_jwk, thumbprint
from s2s.keys._kms import SigningUnavailable
from s2s.keys._signing import LocalSigner, Signer
from s2s.oauth import SCOPE_TOKEN
from s2s.observe import Observer

__all__ = ["NO_STORE", "TokenEndpoint", "TokenResponse", "error_response"]

log = logging.getLogger("s2s.issuer.token")

NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Entra ID's convention, the only way MSAL names a resource in client credentials.
DEFAULT_SCOPE_SUFFIX = "/.default"
_GENERIC_CLIENT_FAILURE = InvalidClient().description


def _method(description: str) -> str:
    """The client-authentication method a failure's reason names (``none``: no usable credential)."""
    method = description.partition(":")[0]
    return method if method in ("client_secret", "private_key_jwt", "federated") else "none"


def _printable(client_id: str) -> str:
    """A presented client id for a log line: callers choose it, so it is cut and escaped."""
    return ascii(client_id[:128])


@functools.cache
def _dummy_assertion_client() -> Client:
    """A private_key_jwt client nobody holds the key of: assertions naming an unknown client (or
    one without keys) are read against it, at the cost a real client's would be."""
    public = public_key_to_jwk(generate_private_key("ES256").public_key())
    public["kid"] = thumbprint(public)
    return Client(client_id="-", audiences=("-",), jwks=(public,))


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


def _assertion_issuer(assertion: str) -> str | None:
    try:
        return assertion_subject(assertion)
    except InvalidAssertion:
        return None


@dataclass(slots=True)
class _Pending:
    """A client whose credentials were presented; ``secret`` still needs the slow hash when set,
    ``federated`` (an external token) still needs its issuer's keys fetched when set."""

    client: Client
    params: Mapping[str, str]
    secret: str | None = field(default=None, repr=False)
    federated: str | None = field(default=None, repr=False)
    # Why the deferred check failed (the log's reason), when it did.
    refusal: InvalidClient | None = None
    # The deferred federated check could not be made: the external issuer's keys are unavailable.
    unavailable: TemporarilyUnavailable | None = None


class TokenEndpoint:
    """Issues client-credentials tokens. Thread-safe; cheap per request once a secret is cached.

    Order of checks (see :mod:`s2s.issuer._ratelimit`): request shape and grant type, then the
    failure budget of the presented (client id, source address) pair (read only), then client
    authentication; a failure is charged to the failure budgets, a success to the client's
    issuance budget; then audience and scope (after authentication, so unauthenticated callers
    learn nothing about a client's configuration). Nothing an unauthenticated caller sends can
    spend a client's issuance budget.
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
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.keys = keys
        self.observer = observer or keys.observer
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
        # Federated clients: external tokens checked against their issuers' keys.
        self.federation = FederationVerifier(
            settings.issuer, clock=clock, token_dirs=settings.federation_token_dirs
        )
        # Set by the composition root when the state, registry or signer block on network I/O:
        # then each request runs in this bounded pool (s2s.issuer._offload), never on the loop.
        self.offload: Callable[[Callable[[], TokenResponse]], Awaitable[TokenResponse]] | None = None

    def close(self) -> None:
        """Release what the endpoint opened itself: the HTTP clients of federated key sources."""
        self.federation.close()

    # -- the phases ------------------------------------------------------------------------------
    def _authenticate(
        self, params: Mapping[str, str], client_id: str, secret: str | None, assertion: str | None
    ) -> _Pending:
        """Check what can be checked without the slow hash; :class:`InvalidClient` on failure.

        Every failure costs about the same, whatever the reason: an unknown id, or a client
        presenting the other method, still gets its secret hashed (against a dummy) or its
        assertion read by the verifier (against a dummy key), so timing tells nothing either.
        The reason travels in the exception's description, for the log only.

        An assertion presented for a client with federated credentials is a token of its platform
        (unless the client also has keys and the assertion names it as its issuer): it is checked
        by :attr:`federation`, without I/O here; a key still to fetch leaves it pending.
        """
        client = self.registry.get(client_id)
        if assertion is not None:
            issuer = _assertion_issuer(assertion)
            if client is not None and client.federated and not (client.jwks and issuer == client_id):
                # An external token (its iss is its platform, not this client): federation.
                return self._authenticate_federated(client, params, assertion)
            try:
                if issuer != client_id:  # client_id in the form names another client than iss
                    with contextlib.suppress(InvalidAssertion):  # the same work as any refusal
                        self.assertions.verify(assertion, _dummy_assertion_client())
                    raise InvalidAssertion("client_id does not match the assertion issuer")
                if client is None or not client.jwks:
                    self.assertions.verify(assertion, _dummy_assertion_client())
                    raise InvalidAssertion(
                        "unknown client" if client is None else "client has no registered keys"
                    )
                self.assertions.verify(assertion, client)
            except InvalidAssertion as exc:
                raise InvalidClient(f"private_key_jwt: {exc.description}") from None
            return _Pending(client, params)
        presented = secret or ""
        if client is None or not client.secrets:
            dummy_check(presented)
            raise InvalidClient(
                "client_secret: " + ("unknown client" if client is None else "client has no secret")
            )
        # Every secret it holds (a rotation keeps the old one for a grace), in constant time.
        decided = self.secrets.assess(client, presented)
        if decided.ok is None:  # an scrypt hash from an earlier version: the slow path, once
            return _Pending(client, params, secret)
        if not decided.ok:
            raise InvalidClient(f"client_secret: {decided.reason}")
        return _Pending(client, params)

    def _authenticate_federated(self, client: Client, params: Mapping[str, str], assertion: str) -> _Pending:
        """Without I/O: done when the external issuer's key is in a fresh key set, else pending
        (``federated`` set: :meth:`_verify_federated` runs off the event loop)."""
        try:
            matched = self.federation.authenticate(assertion, client, io=False)
        except InvalidAssertion as exc:
            raise InvalidClient(exc.description) from None
        if matched is None:
            return _Pending(client, params, federated=assertion)
        return _Pending(client, params)

    def _verify_federated(self, pending: _Pending) -> bool:
        """The federated check that may fetch the external keys (a worker thread)."""
        assert pending.federated is not None
        try:
            self.federation.authenticate(pending.federated, pending.client, io=True)
        except InvalidAssertion as exc:
            pending.refusal = InvalidClient(exc.description)
            return False
        except TemporarilyUnavailable as exc:
            pending.unavailable = exc
            return False
        return True

    def _verify_slow(self, client: Client, secret: str) -> bool:
        """The scrypt check (a worker thread); on success the hash is replaced by the fast one."""
        if not self.secrets.verify_slow(client, secret):
            return False
        self._upgrade(client, secret)
        return True

    def _upgrade(self, client: Client, secret: str) -> None:
        """Best effort: write the fast hash back through the registry's compare-and-swap update
        (only if the stored hash is still the one just verified). Failures are only logged."""
        update = getattr(self.registry, "update", None)
        old = self.secrets.legacy_match(client, secret)  # which of its secrets was just verified
        if update is None or old is None:
            return
        try:
            new = hash_secret(secret)
        except ConfigError:
            log.warning(
                "client %s has a weak legacy secret: rotate it (s2s clients rotate-secret)", client.client_id
            )
            return

        def change(clients: dict[str, Client]) -> None:
            current = clients.get(client.client_id)
            if current is not None and any(s.secret_hash == old for s in current.secrets):
                clients[client.client_id] = current.with_secret_hash_replaced(old, new)

        try:
            update(change)
        except Exception as exc:  # the registry's own error: the token is still issued
            log.warning(
                "could not upgrade the secret hash of client %s: %s", client.client_id, type(exc).__name__
            )
        else:
            log.info("client %s: secret hash upgraded from scrypt to sha256", client.client_id)
            self.observer.client_changed("changed", client.client_id, "issuer")

    def _failed(self, key: str, exc: InvalidClient, client_id: str, source: str | None) -> OAuthError:
        """Charge a failed authentication to the failure budgets, log its reason (while the
        issuer-wide failure budget lasts, which bounds these lines too) and answer the one
        ``invalid_client`` every failure gets, or ``slow_down`` once a budget is spent."""
        wait = self.limiter.record_failure(key)
        if wait > 0:
            self.observer.rate_limited(client_id, "failures", source)
            return SlowDown(wait)
        log.info(
            "client authentication failed: client_id %s from %s: %s",
            _printable(client_id),
            source or "-",
            exc.description,
        )
        self.observer.client_auth_failed(client_id, _method(exc.description), exc.description, source)
        return InvalidClient()

    def _unauthenticated(
        self, key: str, exc: TemporarilyUnavailable, client_id: str, source: str | None
    ) -> OAuthError:
        """A federated check that could not be made (the external keys are unavailable): still
        503, but charged to the failure budgets as a refusal is. The token is unproven, so a
        stream of them (forged, say) ends in ``slow_down`` like wrong secrets do, not in an
        unlimited run of 503s. The reason is logged by the federation, once per cooldown."""
        wait = self.limiter.record_failure(key)
        if wait > 0:
            self.observer.rate_limited(client_id, "failures", source)
            return SlowDown(wait)
        return exc

    def _issue(self, pending: _Pending, source: str | None = None) -> TokenResponse:
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
            with self.observer.span("s2s.sign", kid=key.kid, alg=key.alg):
                token = self.minter.sign(key, claims)
        except SigningUnavailable as exc:
            self.observer.dependency_error("signer")
            # KMS down, throttled or the key disabled: the request may succeed later, and the
            # caller learns nothing about the signing backend (the detail goes to the log only).
            log.error("signing with key %s failed: %s", key.kid, exc.description)
            raise TemporarilyUnavailable("signing is temporarily unavailable") from None
        self.observer.token_issued(
            client.client_id,
            audience,
            scopes,
            jti=claims["jti"],
            kid=key.kid,
            expires_at=claims["exp"],
            source=source,
        )
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
        reason = type(exc).__name__ if isinstance(exc, (OAuthError, *_UNAVAILABLE)) else "fault"
        if isinstance(exc, _UNAVAILABLE):
            self.observer.dependency_error("state" if isinstance(exc, StateUnavailable) else "registry")
            exc = TemporarilyUnavailable(exc.description)
        if not isinstance(exc, OAuthError):
            # The message of an unexpected error is not trusted to be secret-free: type only.
            log.error("token endpoint fault: %s", type(exc).__name__)
            exc = ServerError()
        elif isinstance(exc, InvalidClient) and exc.description != _GENERIC_CLIENT_FAILURE:
            # A malformed or missing credential (before any client id is known): one answer for
            # every client-authentication failure, the reason for the log only.
            log.info("client authentication failed: %s", exc.description)
            self.observer.client_auth_failed("", _method(exc.description), exc.description, None)
            exc = InvalidClient()
        else:
            log.debug("token request refused: %s: %s", exc.error, exc.description)
        self.observer.token_refused(exc.error, reason)
        return error_response(exc)

    async def process(
        self,
        body: bytes,
        content_type: str | None,
        authorization: str | None,
        run_sync: Callable[[Callable[[], bool]], Awaitable[bool]],
        source: str | None = None,
    ) -> TokenResponse:
        """Never raises: the one call an HTTP adapter makes. ``source`` is the caller's address
        (failure budgets are kept per client id and address). A slow secret hash (a secret not
        seen recently) goes through ``run_sync`` (a worker thread); with the secret in the cache
        (the usual case) there is no await at all, so nothing leaves the event loop. With
        ``offload`` set, the whole request runs there instead (:meth:`process_blocking`)."""
        if self.offload is not None:
            try:
                return await self.offload(
                    lambda: self.process_blocking(body, content_type, authorization, source)
                )
            except Exception as exc:
                return self.error_response(exc)
        try:
            pending, key, client_id = self._begin(body, content_type, authorization, source)
            ok = True
            if pending.secret is not None:
                client, presented = pending.client, pending.secret
                ok = await run_sync(lambda: self._verify_slow(client, presented))
            elif pending.federated is not None:
                ok = await run_sync(lambda: self._verify_federated(pending))
            return self._finish(pending, ok, key, client_id, source)
        except Exception as exc:
            return self.error_response(exc)

    def process_blocking(
        self, body: bytes, content_type: str | None, authorization: str | None, source: str | None = None
    ) -> TokenResponse:
        """:meth:`process` in the calling thread, slow hash included (for a worker thread)."""
        try:
            pending, key, client_id = self._begin(body, content_type, authorization, source)
            ok = pending.secret is None or self._verify_slow(pending.client, pending.secret)
            if pending.federated is not None:
                ok = self._verify_federated(pending)
            return self._finish(pending, ok, key, client_id, source)
        except Exception as exc:
            return self.error_response(exc)

    def _begin(
        self, body: bytes, content_type: str | None, authorization: str | None, source: str | None
    ) -> tuple[_Pending, str, str]:
        """Parse, check the failure budget, authenticate all but a slow hash. Returns the pending
        client, its failure-budget key and the claimed client id."""
        params = self._params(body, content_type)
        client_id, secret, assertion = presented_credentials(params, authorization)
        key = failure_key(client_id, source)
        wait = self.limiter.failure_wait(key)
        if wait > 0:
            self.observer.rate_limited(client_id, "failures", source)
            raise SlowDown(wait)
        try:
            with self.observer.span("s2s.client_auth"):
                return self._authenticate(params, client_id, secret, assertion), key, client_id
        except InvalidClient as exc:
            raise self._failed(key, exc, client_id, source) from None
        except TemporarilyUnavailable as exc:  # only federation raises it here
            raise self._unauthenticated(key, exc, client_id, source) from None

    def _finish(
        self, pending: _Pending, secret_ok: bool, key: str, client_id: str, source: str | None
    ) -> TokenResponse:
        """After the slow hash (if any): charge the issuance budget only now, then issue."""
        if pending.unavailable is not None:
            raise self._unauthenticated(key, pending.unavailable, client_id, source)
        if not secret_ok:
            refusal = pending.refusal or InvalidClient("client_secret: wrong secret")
            raise self._failed(key, refusal, client_id, source)
        wait = self.limiter.acquire(pending.client.client_id)
        if wait > 0:
            self.observer.rate_limited(pending.client.client_id, "issuance", source)
            raise SlowDown(wait)
        return self._issue(pending, source)
