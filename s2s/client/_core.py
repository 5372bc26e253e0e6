"""Everything the sync and async token clients share: no I/O here.

The clients differ only in how they send a request and how they sleep. The token exchange and the
discovery are written once, as generators that yield :class:`Send` / :class:`Sleep` steps and
receive the response (or the transport exception); :class:`TokenClient` and
:class:`AsyncTokenClient` drive them with blocking or awaited I/O. The cache and its refresh policy
are here too.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Self

import httpx

from s2s._env import EnvReader
from s2s.client._assertions import AssertionSource, FileAssertionSource
from s2s.client._credentials import (
    ClientAssertion,
    ClientCredential,
    ClientSecret,
    PrivateKeyJWT,
    load_credential,
)
from s2s.client.errors import (
    DiscoveryError,
    InvalidTokenResponse,
    TokenClientError,
    TokenEndpointUnreachable,
    TokenRequestError,
)
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.http import parse_retry_after, secure_url
from s2s.oauth import FORM_TYPE, METADATA_PATH, SCOPE_TOKEN, AccessToken
from s2s.observe import HUB, Observer

if TYPE_CHECKING:
    from s2s.secrets import SecretSource

__all__ = [
    "RETRYABLE_EXCEPTIONS",
    "CacheKey",
    "ClientStats",
    "Flow",
    "Obtain",
    "Outcome",
    "RefreshPolicy",
    "RetryPolicy",
    "Send",
    "Sleep",
    "Step",
    "TokenClientBase",
    "TokenClientSettings",
    "TokenFlows",
    "normalize_scopes",
]

log = logging.getLogger("s2s.client")

# RFC 6749 §5.2: error codes are %x20-21 / %x23-5B / %x5D-7E.
_ERROR_CODE = re.compile(r"\A[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}\Z")
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Transport failures worth another attempt; an invalid URL or protocol is a configuration error.
RETRYABLE_EXCEPTIONS: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

# (audience, scopes); audience None: the one the issuer picks for this client (its only one).
CacheKey = tuple[str | None, frozenset[str]]
_DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """When a cached token is refreshed: once less than ``max(min_remaining, fraction * lifetime)``
    is left. The margin never exceeds half the lifetime, so a very short-lived token is still
    used rather than fetched on every call."""

    min_remaining: float = 10.0
    fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.min_remaining < 0 or not 0 <= self.fraction < 1:
            raise ConfigError("refresh min_remaining must be >= 0 and fraction in [0, 1)")

    def margin(self, lifetime: float) -> float:
        return min(max(self.min_remaining, self.fraction * lifetime), lifetime / 2)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of transient failures (network errors, 429, 5xx).

    Exponential backoff with full jitter (``base_delay * 2**n``, capped at ``max_delay``), or the
    server's ``Retry-After`` when it sends one, until ``deadline`` seconds after the first try (a
    wait that would end past it is not started); ``attempts`` bounds the tries too when set (by
    default only the deadline does). ``timeout`` bounds each HTTP request. The defaults ride out an
    issuer restart (1-3 s of refused connections) with a few seconds to spare.

    A refresh ahead of expiry, while the cached token is still valid, is one try only, bounded by
    the token's remaining life: on failure the caller gets the cached token, and the next refresh
    is tried ``max_delay`` later (:meth:`TokenFlows.defer`).
    """

    attempts: int | None = None
    base_delay: float = 0.2
    max_delay: float = 2.0
    deadline: float = 20.0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if (self.attempts is not None and self.attempts < 1) or self.base_delay < 0 or self.max_delay < 0:
            raise ConfigError("retry attempts must be >= 1 and delays >= 0")
        if self.deadline <= 0 or self.timeout <= 0:
            raise ConfigError("retry deadline and timeout must be > 0")

    def backoff(self, retry: int, rng: Callable[[], float]) -> float:
        """The wait before retry number ``retry`` (0-based) without a ``Retry-After``."""
        return float(rng() * min(self.max_delay, self.base_delay * (2**retry)))


@dataclass(slots=True)
class ClientStats:
    """Counters for metrics and tests: HTTP requests sent (retries and discovery included), cache
    hits, callers that joined a request already in flight instead of sending their own, and tokens
    obtained."""

    requests: int = 0
    cache_hits: int = 0
    joined: int = 0
    obtained: int = 0


@dataclass(frozen=True, slots=True)
class Send:
    request: httpx.Request


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Obtain:
    """Take the current client assertion from ``source``; the driver sends it back (the blocking
    client calls ``get()``, the async one awaits ``aget()``)."""

    source: AssertionSource


Step = Send | Sleep | Obtain
Outcome = httpx.Response | Exception | str | None
Flow = Generator[Step, Outcome, Any]


@dataclass(frozen=True, slots=True)
class TokenClientSettings:
    """Token client configuration from ``S2S_*`` variables (values may be ``aws-sm://`` references).

    ``S2S_TOKEN_ENDPOINT`` or ``S2S_ISSUER`` (discovery), ``S2S_CLIENT_ID``, and one of
    ``S2S_CLIENT_SECRET`` / ``S2S_CLIENT_PRIVATE_KEY`` (a path, PEM/JWK text or reference) /
    ``S2S_CLIENT_ASSERTION_FILE`` (a platform token file, re-read when it changes: no secret).
    """

    client_id: str
    token_endpoint: str | None = None
    issuer: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    assertion_file: str | None = None
    timeout: float = _DEFAULT_TIMEOUT
    # Plain http to a non-loopback host (a mesh sidecar that adds TLS): explicit, logged once.
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ConfigError("the token client needs a client id")
        if (self.token_endpoint is None) == (self.issuer is None):
            raise ConfigError("give exactly one of token_endpoint or issuer")
        given = [self.client_secret, self.private_key, self.assertion_file]
        if sum(value is not None for value in given) != 1:
            raise ConfigError("give exactly one of client_secret, private_key or assertion_file")

    @classmethod
    def from_env(
        cls,
        prefix: str = "S2S_",
        environ: Mapping[str, str] | None = None,
        *,
        secrets: SecretSource | None = None,
    ) -> TokenClientSettings:
        """Read through the one settings reader: ``aws-sm://`` references are resolved (``secrets``
        replaces the Secrets Manager source), and every missing setting is named in one line."""
        env = EnvReader(prefix, environ, secrets=secrets)
        client_id = env.require("CLIENT_ID")
        where = env.one_of("TOKEN_ENDPOINT", "ISSUER")
        credentials = ("CLIENT_SECRET", "CLIENT_PRIVATE_KEY", "CLIENT_ASSERTION_FILE")
        given = [key for key in credentials if env.given(key)]
        if len(given) > 1:
            # Name the ones given first (they conflict), then every alternative.
            env.invalid(
                given[0],
                f"and {' and '.join(env.name(k) for k in given[1:])} are alternatives: give exactly one of "
                + " / ".join(env.name(k) for k in credentials),
            )
        elif not given:
            env.one_of(*credentials)
        values = {
            "client_id": client_id,
            "token_endpoint": env.text("TOKEN_ENDPOINT") if where == "TOKEN_ENDPOINT" else None,
            "issuer": env.text("ISSUER") if where == "ISSUER" else None,
            "client_secret": env.text("CLIENT_SECRET"),
            "private_key": env.text("CLIENT_PRIVATE_KEY"),
            # A path, used as written (a reference would name a secret, and this is no secret).
            "assertion_file": env.raw("CLIENT_ASSERTION_FILE"),
            "timeout": env.duration("TOKEN_TIMEOUT", _DEFAULT_TIMEOUT, minimum=0.001),
            "allow_insecure_http": env.flag("ALLOW_INSECURE_HTTP", False),
        }
        names = {
            "timeout": "TOKEN_TIMEOUT",
            "private_key": "CLIENT_PRIVATE_KEY",
            "assertion_file": "CLIENT_ASSERTION_FILE",
        }
        return env.build(cls, values, names)


def _http_url(url: str, what: str, allow_insecure_http: bool) -> str:
    # The client sends its secret or assertion there: the same rule as the verifier's fetches.
    secure_url(url, what, allow_insecure_http=allow_insecure_http)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ConfigError(f"{what} is not a valid URL") from None
    if parsed.fragment:
        raise ConfigError(f"{what} must be an http(s) URL without a fragment")
    return url


def normalize_scopes(scopes: Iterable[str] | str) -> frozenset[str]:
    items = scopes.split() if isinstance(scopes, str) else list(scopes)
    for item in items:
        if not isinstance(item, str) or not SCOPE_TOKEN.match(item):
            raise ConfigError("a scope is malformed (RFC 6749 §3.3 scope-token)")
    return frozenset(items)


def _scrub(text: str, sensitive: Iterable[str]) -> str:
    # A server might echo what it received; what we sent must not reach our messages or logs.
    for value in sensitive:
        if value and value in text:
            text = text.replace(value, "[redacted]")
    return text


def _outcome(outcome: Outcome) -> str:
    """A request's outcome for the metrics: ``ok``, ``refused`` (a 4xx answer) or ``error``."""
    if not isinstance(outcome, httpx.Response):
        return "error"
    return "ok" if outcome.status_code == 200 else "refused" if outcome.status_code < 500 else "error"


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


class TokenFlows:
    """The I/O-free part of a token client: configuration, request building, response parsing,
    retry decisions and the token cache with its refresh-ahead policy."""

    def __init__(
        self,
        *,
        client_id: str,
        credential: ClientCredential,
        token_endpoint: str | None,
        issuer: str | None,
        clock: Clock,
        refresh: RefreshPolicy,
        retry: RetryPolicy,
        rng: Callable[[], float] = random.random,
        max_cached: int = 1024,
        allow_insecure_http: bool = False,
    ) -> None:
        if not client_id:
            raise ConfigError("the token client needs a client id")
        if (token_endpoint is None) == (issuer is None):
            raise ConfigError("give exactly one of token_endpoint or issuer (discovery)")
        self.client_id = client_id
        self.credential = credential
        self.allow_insecure_http = allow_insecure_http
        self.token_endpoint = (
            _http_url(token_endpoint, "token_endpoint", allow_insecure_http) if token_endpoint else None
        )
        self.issuer = _http_url(issuer.rstrip("/"), "issuer", allow_insecure_http) if issuer else None
        self.clock = clock
        self.refresh = refresh
        self.retry = retry
        self.rng = rng
        self.max_cached = max_cached
        self.stats = ClientStats()
        self.observer: Observer = HUB
        # key -> (token, refresh at, expires at), both on the monotonic clock.
        self._cache: dict[CacheKey, tuple[AccessToken, float, float]] = {}

    # -- cache --------------------------------------------------------------------------------
    @staticmethod
    def key(audience: str | None, scopes: Iterable[str] | str) -> CacheKey:
        if audience is not None and (not isinstance(audience, str) or not audience):
            raise ConfigError("the audience must be a non-empty string (or None: the client's default)")
        return (audience, normalize_scopes(scopes))

    def lookup(self, key: CacheKey) -> tuple[AccessToken | None, bool]:
        """``(token, fresh)``: a usable token (or None) and whether it is outside the refresh window."""
        entry = self._cache.get(key)
        if entry is None:
            return None, False
        token, refresh_at, expires_at = entry
        now = self.clock.monotonic()
        if now >= expires_at:
            return None, False
        return token, now < refresh_at

    def store(self, key: CacheKey, token: AccessToken) -> None:
        now = self.clock.monotonic()
        lifetime = max(0.0, token.lifetime)
        if len(self._cache) >= self.max_cached and key not in self._cache:
            expired = [k for k, (_, _, exp) in self._cache.items() if exp <= now]
            for k in expired or [next(iter(self._cache))]:
                del self._cache[k]
        self._cache[key] = (token, now + lifetime - self.refresh.margin(lifetime), now + lifetime)

    def defer(self, key: CacheKey, seconds: float) -> None:
        """After a failed refresh: serve the cached token without trying again for ``seconds``
        (never past its expiry), so callers do not all retry against a failing issuer."""
        entry = self._cache.get(key)
        if entry is not None:
            token, _, expires_at = entry
            self._cache[key] = (token, min(self.clock.monotonic() + seconds, expires_at), expires_at)

    def remaining(self, key: CacheKey) -> float:
        """Seconds the cached token for ``key`` stays valid (0 when there is none)."""
        entry = self._cache.get(key)
        return max(0.0, entry[2] - self.clock.monotonic()) if entry is not None else 0.0

    def drop(self, key: CacheKey, token: AccessToken | None = None) -> bool:
        """Forget the cached token for ``key`` (only if it is ``token``, when given)."""
        entry = self._cache.get(key)
        if entry is None or (token is not None and entry[0].token != token.token):
            return False
        del self._cache[key]
        return True

    def clear(self) -> None:
        self._cache.clear()

    # -- discovery ----------------------------------------------------------------------------
    def discovery(self) -> Flow:
        """Yields the metadata request(s); returns the token endpoint."""
        assert self.issuer is not None
        url = self.issuer + METADATA_PATH

        def build() -> Generator[Step, Outcome, httpx.Request]:
            yield from ()  # a step that needs nothing from the driver
            return httpx.Request("GET", url, headers={"Accept": "application/json"})

        response = yield from self._exchange(build, url)
        if response.status_code != 200:
            raise DiscoveryError(f"{url} answered HTTP {response.status_code}")
        body = _json_object(response)
        if body is None:
            raise DiscoveryError(f"{url} did not answer a JSON object")
        # RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
        if str(body.get("issuer", "")).rstrip("/") != self.issuer:
            raise DiscoveryError(f"{url} is metadata for another issuer")
        endpoint = body.get("token_endpoint")
        if not isinstance(endpoint, str):
            raise DiscoveryError(f"{url} names no token_endpoint")
        try:
            _http_url(endpoint, "the discovered token_endpoint", self.allow_insecure_http)
        except ConfigError as exc:
            raise DiscoveryError(exc.description) from None
        # Metadata read over https must not send our credentials to plain http (not even on this
        # host, where http://127.0.0.1:<port> is whatever listens there), unless opted in.
        if (
            self.issuer.startswith("https:")
            and not endpoint.startswith("https:")
            and not self.allow_insecure_http
        ):
            raise DiscoveryError("the discovered token_endpoint must use https (the issuer does)")
        self.token_endpoint = endpoint
        return self.token_endpoint

    # -- token exchange -----------------------------------------------------------------------
    def token_request(
        self, audience: str | None, scopes: frozenset[str], *, assertion: str | None = None
    ) -> tuple[httpx.Request, tuple[str, ...]]:
        """A new client-credentials request (a fresh assertion each time) and its sensitive values.

        ``assertion``: the one a :class:`ClientAssertion`'s source just gave (see :class:`Obtain`).
        """
        assert self.token_endpoint is not None
        form = {"grant_type": "client_credentials"}
        if audience is not None:
            form["audience"] = audience
        if scopes:
            form["scope"] = " ".join(sorted(scopes))
        headers = {"Accept": "application/json", "Content-Type": FORM_TYPE}
        if assertion is not None and isinstance(self.credential, ClientAssertion):
            sensitive = self.credential.fill(self.client_id, assertion, form)
        else:
            sensitive = self.credential.apply(
                self.client_id, self.token_endpoint, self.clock.now(), form, headers
            )
        request = httpx.Request("POST", self.token_endpoint, data=form, headers=headers)
        return request, sensitive

    def fetch(self, key: CacheKey, *, within: float | None = None) -> Flow:
        """Yields the token request(s) and waits; returns the :class:`AccessToken` (not cached).

        ``within``: a refresh while a valid token is cached: one try, done within that many seconds.
        """
        audience, scopes = key
        assert self.token_endpoint is not None
        sent: list[tuple[str, ...]] = []

        def build() -> Generator[Step, Outcome, httpx.Request]:
            assertion: str | None = None
            if isinstance(self.credential, ClientAssertion):
                # Every attempt takes the source's current assertion: a rotated file counts at once.
                obtained = yield Obtain(self.credential.source)
                if not isinstance(obtained, str):
                    raise TokenClientError("the assertion source gave no assertion")
                assertion = obtained
            request, sensitive = self.token_request(audience, scopes, assertion=assertion)
            sent.append(sensitive)
            return request

        response = yield from self._exchange(build, self.token_endpoint, within=within)
        secrets_sent = [value for group in sent for value in group]
        if response.status_code != 200:
            raise self._refusal(response, secrets_sent)
        return self._parse(response, audience, scopes)

    def _exchange(
        self,
        build: Callable[[], Generator[Step, Outcome, httpx.Request]],
        url: str,
        *,
        within: float | None = None,
    ) -> Generator[Step, Outcome, httpx.Response]:
        """Send with retries; the final response: a success, a non-transient refusal, or the last
        transient one once attempts or the deadline run out (network failures raise instead).
        ``within``: one try only, bounded by that many seconds."""
        started = self.clock.monotonic()
        deadline = self.retry.deadline if within is None else max(0.001, min(within, self.retry.deadline))
        attempts = self.retry.attempts if within is None else 1
        retry = 0
        while True:
            request = yield from build()
            remaining = deadline - (self.clock.monotonic() - started)
            timeout = max(0.001, min(self.retry.timeout, remaining))
            request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
            self.stats.requests += 1
            sent = self.clock.monotonic()
            outcome = yield Send(request)
            self.observer.client_request(self.client_id, _outcome(outcome), self.clock.monotonic() - sent)
            retry_after: float | None = None
            if isinstance(outcome, httpx.Response):
                if outcome.status_code not in _RETRYABLE_STATUS:
                    return outcome
                retry_after = parse_retry_after(outcome.headers.get("retry-after"), self.clock.now())
                failure = f"HTTP {outcome.status_code}"
            elif isinstance(outcome, RETRYABLE_EXCEPTIONS):
                failure = type(outcome).__name__
            elif isinstance(outcome, httpx.HTTPError):
                raise TokenEndpointUnreachable(f"cannot call {url}: {type(outcome).__name__}")
            else:
                raise TokenClientError(f"unexpected outcome for {url}")
            wait = retry_after if retry_after is not None else self.retry.backoff(retry, self.rng)
            elapsed = self.clock.monotonic() - started
            retry += 1
            if (attempts is not None and retry >= attempts) or elapsed + wait >= deadline:
                if isinstance(outcome, httpx.Response):
                    # Transient, but out of attempts or time: the caller gets the typed refusal.
                    return outcome
                raise TokenEndpointUnreachable(
                    f"cannot reach {url}: {failure} (gave up after {retry} attempt(s))"
                )
            self.observer.client_retry(self.client_id)
            log.warning("token endpoint %s: %s; retry %d in %.2fs", url, failure, retry, wait)
            yield Sleep(wait)

    def _refusal(self, response: httpx.Response, sensitive: Iterable[str]) -> TokenRequestError:
        status = response.status_code
        body = _json_object(response) or {}
        sensitive = tuple(sensitive)
        code = body.get("error")
        # The code goes into the message and the log as is, so an echoed secret disqualifies it too.
        if not isinstance(code, str) or not _ERROR_CODE.match(code) or _scrub(code, sensitive) != code:
            code = "temporarily_unavailable" if status in _RETRYABLE_STATUS else "invalid_response"
        raw = body.get("error_description")
        # Scrub before cutting: a cut through an echoed secret would leave a prefix the scrub misses.
        description = _scrub(raw, sensitive)[:300] if isinstance(raw, str) else f"HTTP {status}"
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
        log.warning("token request refused: HTTP %d %s", status, code)
        return TokenRequestError(
            code, f"{code}: {description} (HTTP {status})", status_code=status, retry_after=retry_after
        )

    def _parse(self, response: httpx.Response, audience: str | None, scopes: frozenset[str]) -> AccessToken:
        body = _json_object(response)
        if body is None:
            raise InvalidTokenResponse("the token endpoint answered 200 without a JSON object")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise InvalidTokenResponse("the token response has no access_token")
        if str(body.get("token_type", "")).lower() != "bearer":
            raise InvalidTokenResponse("the token response is not a Bearer token")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise InvalidTokenResponse("the token response has no numeric expires_in")
        if not 0 < expires_in < 366 * 86400 or math.isnan(expires_in):
            raise InvalidTokenResponse("the token response expires_in is out of range")
        granted = body.get("scope")
        # RFC 6749 §5.1: scope is omitted when it is what was requested.
        scope = tuple(granted.split()) if isinstance(granted, str) else tuple(sorted(scopes))
        now = self.clock.now()
        self.stats.obtained += 1
        self.observer.client_token(self.client_id, "fetched")
        log.debug("token obtained for %s (expires in %ss)", audience, expires_in)
        return AccessToken(
            token=token,
            expires_at=now + float(expires_in),
            scopes=scope,
            audience=audience,
            issued_at=now,
        )


class TokenClientBase:
    """What the blocking and the async token client share besides their flows: construction from
    settings or the environment, and the read-only view of their state. Each twin adds only how it
    sends and sleeps."""

    _flows: TokenFlows

    def _setup(
        self,
        token_endpoint: str | None,
        *,
        client_id: str,
        client_secret: str | ClientSecret | None,
        private_key: str | os.PathLike[str] | PrivateKeyJWT | None,
        issuer: str | None,
        clock: Clock,
        client_assertion: ClientAssertion | AssertionSource | None = None,
        refresh: RefreshPolicy | None,
        retry: RetryPolicy | None,
        rng: Callable[[], float],
        secret_source: SecretSource | None,
        http_given: bool,
        transport_given: bool,
        allow_insecure_http: bool = False,
    ) -> RetryPolicy:
        """Check the arguments both twins take and make the flows; the retry policy in force."""
        if http_given and transport_given:
            raise TypeError("give http_client or transport, not both")
        retry = retry or RetryPolicy()
        self._flows = TokenFlows(
            client_id=client_id,
            credential=load_credential(
                client_secret=client_secret,
                private_key=private_key,
                client_assertion=client_assertion,
                secret_source=secret_source,
            ),
            token_endpoint=token_endpoint,
            issuer=issuer,
            clock=clock,
            refresh=refresh or RefreshPolicy(),
            retry=retry,
            rng=rng,
            allow_insecure_http=allow_insecure_http,
        )
        return retry

    @classmethod
    def from_settings(cls, settings: TokenClientSettings, **options: Any) -> Self:
        retry = options.pop("retry", None) or RetryPolicy(timeout=settings.timeout)
        make: Callable[..., Self] = cls  # each twin's own constructor
        if settings.assertion_file is not None:
            source = FileAssertionSource(settings.assertion_file, clock=options.get("clock", system_clock))
            options["client_assertion"] = ClientAssertion(source)
        return make(
            settings.token_endpoint,
            issuer=settings.issuer,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            private_key=settings.private_key,
            retry=retry,
            allow_insecure_http=options.pop("allow_insecure_http", settings.allow_insecure_http),
            **options,
        )

    @classmethod
    def from_env(cls, prefix: str = "S2S_", **options: Any) -> Self:
        settings = TokenClientSettings.from_env(prefix, secrets=options.get("secret_source"))
        return cls.from_settings(settings, **options)

    def __repr__(self) -> str:
        where = self._flows.token_endpoint or self._flows.issuer
        return f"{type(self).__name__}({self._flows.client_id!r}, {where!r}, {self._flows.credential.method})"

    @property
    def client_id(self) -> str:
        return self._flows.client_id

    @property
    def token_endpoint(self) -> str | None:
        """The token endpoint (``None`` until discovered, when built from an issuer)."""
        return self._flows.token_endpoint

    @property
    def stats(self) -> ClientStats:
        return self._flows.stats
