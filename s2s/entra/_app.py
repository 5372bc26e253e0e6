"""``EntraApp``: MSAL's ConfidentialClientApplication for async services.

MSAL is synchronous and does HTTP inside every call, so each call runs in a worker thread, at most
``max_concurrency`` at a time, and the event loop never blocks. Known MSAL 1.39 behaviour this
wrapper accounts for:

- the authority must be ``https://host/<tenant>``; hosts MSAL does not know need
  ``instance_discovery=False`` (the default here for such hosts);
- on-behalf-of never reads MSAL's cache, so OBO results are cached here, keyed by a sha256 of the
  incoming token and the scopes, until ``obo_refresh_margin`` seconds before they expire;
- MSAL adds ``openid profile offline_access`` to OBO requests and refuses them as input, so they are
  dropped from the scopes asked for;
- Retry-After is honoured below MSAL (see :mod:`s2s.entra._http`);
- a federated credential (workload identity federation) is MSAL's client-assertion *callable*,
  called for every token request, so the kubelet's rotated token file is read when it is needed.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from s2s._env import EnvReader
from s2s.client._credentials import ClientAssertion, ClientSecret
from s2s.client.errors import AssertionUnavailable
from s2s.clock import Clock, system_clock
from s2s.entra._cache import OboCache, TokenCachePersistence, obo_cache_key
from s2s.entra._challenge import claims_challenge_header
from s2s.entra._credentials import (
    CertificateCredential,
    Credential,
    PfxCredential,
    federated_token_file,
    msal_credential,
)
from s2s.entra._http import MsalHttpClient, RetryingHttpClient
from s2s.entra.errors import (
    EntraError,
    EntraInteractionRequired,
    EntraInvalidGrant,
    EntraThrottled,
    EntraUnavailable,
    error_from_result,
)
from s2s.errors import ConfigError, MissingExtra
from s2s.oauth import AccessToken
from s2s.observe import HUB, observed_msal
from s2s.secrets import SecretSource

__all__ = [
    "AZURE_CHINA",
    "AZURE_PUBLIC_CLOUD",
    "AZURE_US_GOVERNMENT",
    "EntraApp",
    "EntraConfig",
]

log = logging.getLogger("s2s.entra.app")

AZURE_PUBLIC_CLOUD = "https://login.microsoftonline.com"
AZURE_US_GOVERNMENT = "https://login.microsoftonline.us"
AZURE_CHINA = "https://login.chinacloudapi.cn"
# Hosts MSAL validates itself; any other host (a local test authority, a private cloud) gets
# instance discovery turned off, else MSAL asks login.microsoftonline.com about it and fails.
_KNOWN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login-us.microsoftonline.com",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)
_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})


def _scopes(scopes: str | Sequence[str]) -> tuple[str, ...]:
    items = scopes.split() if isinstance(scopes, str) else [s for s in scopes if isinstance(s, str)]
    out = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    if not out:
        raise ConfigError("at least one scope is needed")
    return out


def _import_msal() -> Any:
    try:
        import msal  # noqa: PLC0415 - MSAL is the optional [msal] extra
    except ImportError:
        raise MissingExtra("msal", "msal") from None
    return msal


@dataclass(frozen=True, slots=True)
class EntraConfig:
    """Settings for an :class:`EntraApp`; every credential field may be an ``aws-sm://`` reference.

    Environment (``prefix`` = ``S2S_ENTRA_``): ``TENANT_ID``, ``CLIENT_ID``, and one credential:
    ``CLIENT_SECRET``; or ``CERTIFICATE_KEY`` (PEM) + ``CERTIFICATE_THUMBPRINT`` (+ optional
    ``CERTIFICATE``, the public PEM); or ``PFX`` (base64) + optional ``PFX_PASSWORD``; or
    ``FEDERATED_TOKEN_FILE`` (workload identity federation: no secret). Also ``AUTHORITY_HOST``,
    ``INSTANCE_DISCOVERY``, ``MAX_CONCURRENCY``, ``OBO_REFRESH_MARGIN``, ``TOKEN_CACHE_PATH``.

    With no credential of its own configured, the Azure workload-identity webhook's variables are
    used: ``AZURE_FEDERATED_TOKEN_FILE`` with ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID`` and
    ``AZURE_AUTHORITY_HOST`` (each ``S2S_ENTRA_*`` one, when set, still wins).
    """

    tenant_id: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate_key: str | None = field(default=None, repr=False)
    certificate_thumbprint: str | None = None
    certificate: str | None = None
    pfx: str | None = field(default=None, repr=False)
    pfx_password: str | None = field(default=None, repr=False)
    federated_token_file: str | None = None
    authority_host: str = AZURE_PUBLIC_CLOUD
    instance_discovery: bool | None = None
    max_concurrency: int = 8
    obo_refresh_margin: float = 300.0
    token_cache_path: str | None = None

    def credential(self, *, clock: Clock = system_clock) -> Credential:
        given = [self.client_secret, self.certificate_key, self.pfx, self.federated_token_file]
        if sum(value is not None for value in given) != 1:
            raise ConfigError(
                "give exactly one Entra credential: a client secret, a certificate key, a PFX "
                "or a federated token file"
            )
        if self.federated_token_file is not None:
            return federated_token_file(self.federated_token_file, clock=clock)
        if self.client_secret is not None:
            return ClientSecret(self.client_secret)
        if self.certificate_key is not None:
            if not self.certificate_thumbprint:
                raise ConfigError("a certificate credential needs its thumbprint")
            return CertificateCredential(self.certificate_key, self.certificate_thumbprint, self.certificate)
        assert self.pfx is not None
        return PfxCredential(self.pfx, self.pfx_password)

    @classmethod
    def from_env(
        cls,
        prefix: str = "S2S_ENTRA_",
        environ: Mapping[str, str] | None = None,
        *,
        secrets: SecretSource | None = None,
    ) -> EntraConfig:
        """Read through the one settings reader: ``aws-sm://`` references are resolved now (a PFX
        reference when the app is built: it may be a binary secret), and every missing or invalid
        variable is named in one line."""
        env = EnvReader(prefix, environ, secrets=secrets)
        # The Azure workload-identity webhook's variables: used only when no credential of ours is
        # configured, so that an AZURE_CLIENT_ID meant for another identity never mixes with ours.
        azure = EnvReader("AZURE_", environ)
        tenant_given, client_given = env.given("TENANT_ID"), env.given("CLIENT_ID")
        kinds = ("CLIENT_SECRET", "CERTIFICATE_KEY", "PFX", "FEDERATED_TOKEN_FILE")
        credentials = [key for key in kinds if env.given(key)]
        webhook = not credentials and azure.given("FEDERATED_TOKEN_FILE")

        def identity(key: str, given: bool) -> str:
            if webhook and not given and azure.given(key):
                return azure.raw(key) or ""
            return env.require(key)

        tenant, client = identity("TENANT_ID", tenant_given), identity("CLIENT_ID", client_given)
        if len(credentials) > 1:
            others = ", ".join(env.name(k) for k in credentials[1:])
            env.invalid(credentials[0], f"and {others} are alternatives: give exactly one credential")
        elif not credentials and not webhook:
            env.one_of(*kinds)
        elif credentials == ["CERTIFICATE_KEY"]:
            env.require("CERTIFICATE_THUMBPRINT")
        token_file = env.raw("FEDERATED_TOKEN_FILE")  # a path, used as written
        authority_host = env.text("AUTHORITY_HOST")
        if webhook:
            token_file = azure.raw("FEDERATED_TOKEN_FILE")
            authority_host = authority_host or azure.raw("AUTHORITY_HOST")
        values = {
            "tenant_id": tenant,
            "client_id": client,
            "client_secret": env.text("CLIENT_SECRET"),
            "certificate_key": env.text("CERTIFICATE_KEY"),
            "certificate_thumbprint": env.text("CERTIFICATE_THUMBPRINT"),
            "certificate": env.text("CERTIFICATE"),
            "pfx": env.raw("PFX"),
            "pfx_password": env.text("PFX_PASSWORD"),
            "federated_token_file": token_file,
            "authority_host": authority_host or AZURE_PUBLIC_CLOUD,
            "instance_discovery": env.flag("INSTANCE_DISCOVERY", None),
            "max_concurrency": env.integer("MAX_CONCURRENCY", 8, minimum=1),
            "obo_refresh_margin": env.duration("OBO_REFRESH_MARGIN", 300.0),
            "token_cache_path": env.text("TOKEN_CACHE_PATH"),
        }
        config = env.build(cls, values)
        config.credential()  # exactly one credential, checked now rather than at the first call
        return config


class _Assertions:
    """MSAL's client-assertion callable: the source's current assertion, with the last few kept."""

    def __init__(self, credential: ClientAssertion) -> None:
        self._source = credential.source
        self._sent: list[str] = []
        self._lock = threading.Lock()

    def __call__(self) -> str:
        assertion = self._source.get()
        with self._lock:
            if assertion not in self._sent:
                self._sent = [*self._sent[-3:], assertion]
        return assertion

    def sent(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._sent)


class _Flight:
    """One on-behalf-of request that concurrent callers for the same token and scopes share."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.token: AccessToken | None = None
        self.error: Exception | None = None


class EntraApp:
    """An Entra ID confidential client: client credentials and on-behalf-of, from async code."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        credential: Credential,
        *,
        authority_host: str = AZURE_PUBLIC_CLOUD,
        authority: str | None = None,
        instance_discovery: bool | None = None,
        http_client: MsalHttpClient | None = None,
        token_cache: TokenCachePersistence | None = None,
        secrets: SecretSource | None = None,
        max_concurrency: int = 8,
        obo_refresh_margin: float = 300.0,
        obo_cache_size: int = 10_000,
        max_retries: int = 2,
        max_retry_after: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = system_clock,
        timeout: float = 10.0,
        client_capabilities: Sequence[str] | None = None,
    ) -> None:
        self._msal = _import_msal()
        if not tenant_id or not client_id:
            raise ConfigError("an Entra app needs a tenant id and a client id")
        if max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority = (authority or f"{authority_host.rstrip('/')}/{tenant_id}").rstrip("/")
        if "://" not in self.authority:
            self.authority = "https://" + self.authority
        parts = urlsplit(self.authority)
        if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") == "":
            raise ConfigError(
                "the Entra authority must be https://<host>/<tenant> (MSAL refuses anything else)"
            )
        if instance_discovery is None and parts.hostname not in _KNOWN_HOSTS:
            instance_discovery = False
        self._instance_discovery = instance_discovery
        resolved: ClientSecret | CertificateCredential | ClientAssertion = credential.resolved(secrets)
        self._assertion: _Assertions | None = None
        if isinstance(resolved, ClientAssertion):
            # Remember what MSAL sent, so an error that echoes it can be scrubbed.
            self._assertion = _Assertions(resolved)
            self._credential: str | dict[str, Any] = {"client_assertion": self._assertion}
        else:
            self._credential = msal_credential(resolved)
        self._static_secrets = (resolved.value,) if isinstance(resolved, ClientSecret) else ()
        self._own_session = http_client is None
        if http_client is None:
            import requests  # noqa: PLC0415 - comes with msal

            http_client = cast(MsalHttpClient, requests.Session())
        self._http = RetryingHttpClient(
            http_client,
            max_retries=max_retries,
            max_retry_after=max_retry_after,
            sleep=sleep,
            clock=clock,
            timeout=timeout if self._own_session else None,
        )
        self._persistence = token_cache
        self._capabilities = list(client_capabilities) if client_capabilities else None
        self._clock = clock
        self._max_concurrency = max_concurrency
        self._limiter: anyio.CapacityLimiter | None = None
        self._obo_cache: OboCache[AccessToken] = OboCache(
            clock, margin=obo_refresh_margin, max_entries=obo_cache_size
        )
        self._inflight: dict[str, _Flight] = {}
        self._build_lock = threading.Lock()
        self._persist_lock = threading.Lock()
        self._apps: tuple[Any, Any] | None = None
        self._token_cache: Any = None
        self._obo_token_cache: Any = None
        self._throttled_until = 0.0

    @classmethod
    def from_config(cls, config: EntraConfig, **kwargs: Any) -> EntraApp:
        """Build from :class:`EntraConfig`; ``kwargs`` go to the constructor (http_client, secrets...)."""
        if config.token_cache_path and "token_cache" not in kwargs:
            from s2s.entra._cache import FileTokenCache  # noqa: PLC0415

            kwargs["token_cache"] = FileTokenCache(config.token_cache_path)
        return cls(
            config.tenant_id,
            config.client_id,
            config.credential(clock=kwargs.get("clock", system_clock)),
            authority_host=config.authority_host,
            instance_discovery=config.instance_discovery,
            max_concurrency=config.max_concurrency,
            obo_refresh_margin=config.obo_refresh_margin,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"EntraApp(authority={self.authority!r}, client_id={self.client_id!r})"

    @property
    def authorization_uri(self) -> str:
        return f"{self.authority}/oauth2/v2.0/authorize"

    def challenge_header(self, error: EntraInteractionRequired | str) -> str:
        """The 401 ``WWW-Authenticate`` value asking the client to step up with ``error.claims``."""
        claims = error if isinstance(error, str) else error.claims
        if not claims:
            raise ValueError("this error carries no claims challenge")
        return claims_challenge_header(claims, authorization_uri=self.authorization_uri)

    # -- public async API ----------------------------------------------------------------------
    async def for_client(self, scopes: str | Sequence[str]) -> AccessToken:
        """A token for this application itself (client credentials), e.g. ``api://x/.default``."""
        wanted = _scopes(scopes)
        result, status, retry_after = await self._run(
            "client", lambda app: app.acquire_token_for_client(scopes=list(wanted))
        )
        return self._token(result, wanted, status, retry_after, ())

    async def on_behalf_of(
        self, user_token: str, scopes: str | Sequence[str], *, claims_challenge: str | None = None
    ) -> AccessToken:
        """A token for ``scopes`` acting as the user whose (already verified) token is ``user_token``.

        Results are cached by sha256(token + scopes) until shortly before they expire; concurrent
        calls for the same token and scopes share one request. A ``claims_challenge`` bypasses the
        cache (the caller is stepping up).
        """
        if not isinstance(user_token, str) or not user_token.strip():
            raise EntraInvalidGrant("no incoming user token to exchange")
        wanted = tuple(s for s in _scopes(scopes) if s not in _RESERVED_SCOPES)
        if not wanted:
            raise ConfigError("ask for API scopes; MSAL adds openid, profile and offline_access itself")
        key = obo_cache_key(user_token, wanted)
        while claims_challenge is None:
            hit = self._obo_cache.get(key)
            if hit is not None:
                return replace(hit, from_cache=True)
            flight = self._inflight.get(key)
            if flight is None:
                break
            await flight.done.wait()
            if flight.token is not None:
                return flight.token
            if flight.error is not None:
                raise flight.error
            # The shared request was cancelled: try again, maybe leading the next one.
        own = _Flight()
        if claims_challenge is None:
            self._inflight[key] = own
        try:
            result, status, retry_after = await self._run(
                "obo",
                lambda app: app.acquire_token_on_behalf_of(
                    user_token, list(wanted), claims_challenge=claims_challenge
                ),
            )
            token = self._token(result, wanted, status, retry_after, (user_token,))
            self._obo_cache.put(key, token, token.expires_at)
            own.token = token
            return token
        except Exception as exc:
            own.error = exc
            raise
        finally:
            if self._inflight.get(key) is own:
                del self._inflight[key]
            own.done.set()

    def forget(self) -> None:
        """Drop every cached on-behalf-of result (e.g. after a user signed out everywhere)."""
        self._obo_cache.clear()

    def close(self) -> None:
        """Close the HTTP session this app created (an injected client is left to its owner)."""
        if self._own_session:
            self._http.close()

    # -- machinery -----------------------------------------------------------------------------
    async def _run(
        self, which: str, call: Callable[[Any], Mapping[str, Any]]
    ) -> tuple[Mapping[str, Any], int | None, float | None]:
        if self._limiter is None:
            # Made lazily: an anyio limiter belongs to the running event loop.
            self._limiter = anyio.CapacityLimiter(self._max_concurrency)
        with observed_msal(HUB, "on_behalf_of" if which == "obo" else "client_credentials"):
            return await anyio.to_thread.run_sync(
                functools.partial(self._call, which, call), limiter=self._limiter
            )

    def _call(
        self, which: str, call: Callable[[Any], Mapping[str, Any]]
    ) -> tuple[Mapping[str, Any], int | None, float | None]:
        self._http.reset()
        try:
            client_app, obo_app = self._build()
            result = call(obo_app if which == "obo" else client_app)
        except (EntraError, AssertionUnavailable):
            # AssertionUnavailable: the federated token file is missing or expired (typed, and
            # naming the file), raised by our callable from inside MSAL.
            raise
        except Exception as exc:
            # MSAL raises on 5xx, on non-JSON answers and on network errors; their messages can
            # quote request data, so only the type is kept.
            status, retry_after = self._http.last_status, self._http.last_retry_after
            log.warning("Entra ID token request failed: %s (HTTP %s)", type(exc).__name__, status)
            if status == 429:
                raise self._throttled(retry_after) from None
            raise EntraUnavailable(f"the token request to Entra ID failed ({type(exc).__name__})") from None
        if which == "obo":
            # OBO results are cached above MSAL; MSAL's copy (with user refresh tokens) is never read.
            self._obo_token_cache.deserialize(None)
        else:
            self._persist()
        return result, self._http.last_status, self._http.last_retry_after

    def _build(self) -> tuple[Any, Any]:
        with self._build_lock:
            if self._apps is not None:
                return self._apps
            msal = self._msal
            self._token_cache = msal.SerializableTokenCache()
            if self._persistence is not None:
                saved = self._persistence.load()
                if saved:
                    self._token_cache.deserialize(saved)
            self._obo_token_cache = msal.SerializableTokenCache()
            common: dict[str, Any] = {
                "client_id": self.client_id,
                "client_credential": self._credential,
                "authority": self.authority,
                "http_client": self._http,
                "client_capabilities": self._capabilities,
            }
            if self._instance_discovery is not None:
                common["instance_discovery"] = self._instance_discovery
            try:
                apps = (
                    msal.ConfidentialClientApplication(token_cache=self._token_cache, **common),
                    msal.ConfidentialClientApplication(token_cache=self._obo_token_cache, **common),
                )
            except ValueError:
                # MSAL's ValueError here means the authority's discovery document was unreadable.
                raise EntraUnavailable(f"cannot read the OpenID configuration of {self.authority}") from None
            self._apps = apps
            return apps

    def _persist(self) -> None:
        if self._persistence is None or not self._token_cache.has_state_changed:
            return
        with self._persist_lock:
            self._persistence.save(self._token_cache.serialize())
            self._token_cache.has_state_changed = False

    @property
    def _secret_values(self) -> tuple[str, ...]:
        return self._static_secrets + (self._assertion.sent() if self._assertion is not None else ())

    def _throttled(self, retry_after: float | None) -> EntraThrottled:
        now = self._clock.now()
        if retry_after is not None:
            self._throttled_until = now + retry_after
        elif now < self._throttled_until:
            retry_after = self._throttled_until - now
        return EntraThrottled("Entra ID is throttling this application (HTTP 429)", retry_after=retry_after)

    def _token(
        self,
        result: Mapping[str, Any],
        scopes: tuple[str, ...],
        status: int | None,
        retry_after: float | None,
        secrets: tuple[str, ...],
    ) -> AccessToken:
        token = result.get("access_token")
        if isinstance(token, str) and token:
            try:
                expires_in = float(result.get("expires_in", 0))
            except (TypeError, ValueError):
                expires_in = 0.0
            now = self._clock.now()
            return AccessToken(
                token=token,
                expires_at=now + expires_in,
                issued_at=now,
                scopes=scopes,
                token_type=str(result.get("token_type") or "Bearer"),
                from_cache=result.get("token_source") == "cache",
            )
        if status == 429 or (status is None and self._clock.now() < self._throttled_until):
            # status None: MSAL replayed its remembered 429 without asking Entra again.
            error = self._throttled(retry_after)
            error.error_codes = error_from_result(result).error_codes
            raise error
        raise error_from_result(
            result, secrets=(*secrets, *self._secret_values), status=status, retry_after=retry_after
        )
