"""Verifier configuration: one frozen :class:`VerifierConfig` per trusted issuer, with presets.

Provider presets and what they rely on (each checked against the provider's documented token shape):

* **s2s** (our issuer): RFC 9068 access tokens, ``typ: at+jwt``, JWKS at ``/.well-known/jwks.json``.
* **Entra ID v2**: access tokens have header ``typ: JWT`` (plus an ``x5t`` hint, allowed and
  ignored) and ``aud`` = the API's client id, which is also what an ID token issued to that same app
  would carry. So the preset refuses ID tokens by their claims: an access token always has ``azp``
  and at least one of ``scp`` (delegated) / ``roles`` (app-only); an ID token has neither ``scp``
  nor ``roles`` and may have ``nonce``, which is forbidden. Multi-tenant apps use the issuer
  template ``https://login.microsoftonline.com/{tenantid}/v2.0``: the ``tid`` must be in
  ``allowed_tenants`` and the ``iss`` must be the template filled with the token's own ``tid``.
* **Okta** (custom authorization server): access token header has no ``typ``; access tokens carry
  ``cid`` and ``scp``, ID tokens carry neither (``aud`` = client id, ``nonce``), so ``cid`` is
  required and ``nonce`` forbidden.
* **Auth0**: header ``typ`` is ``JWT`` (default profile) or ``at+jwt`` (RFC 9068 profile); ``aud``
  is the API identifier, an ID token's is the client id; ``nonce`` forbidden; RS256 only.
* **Cognito**: header has no ``typ``; access tokens have no ``aud`` but ``client_id`` and
  ``token_use: access`` (ID tokens: ``aud`` and ``token_use: id``). The audience check is made
  against ``client_id`` and ``token_use`` must be ``access``.
* **Keycloak**: header ``typ: JWT`` (``at+jwt`` when the client enables it); the payload's own
  ``typ`` is ``Bearer`` for access tokens and ``ID`` for ID tokens, so ``typ == "Bearer"`` is
  asserted. Keycloak puts the API in ``aud`` only with an audience mapper: configure one.

``token_types`` lists the accepted ``typ`` header values after RFC 8725 normalisation (lower case,
``application/`` dropped); the empty string means "no ``typ`` header" is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from s2s.errors import ConfigError
from s2s.http import is_loopback_host, secure_url
from s2s.jose import (
    DEFAULT_LIMITS,
    NEVER_ALLOWED,
    VERIFIER_ALGORITHMS,
    AlgorithmPolicy,
    HeaderPolicy,
    TokenLimits,
    normalize_typ,
)
from s2s.verify._principal import Principal

if TYPE_CHECKING:
    from s2s.secrets._source import SecretSource

__all__ = [
    "DEFAULT_REQUIRED_CLAIMS",
    "MAX_LEEWAY",
    "TENANT_PLACEHOLDER",
    "RevocationCheck",
    "VerifierConfig",
    "check_discovered_url",
    "check_fetch_url",
    "is_loopback_host",
]

DEFAULT_REQUIRED_CLAIMS: tuple[str, ...] = ("iss", "sub", "aud", "exp", "iat")
MAX_LEEWAY = 300.0
TENANT_PLACEHOLDER = "{tenantid}"
ENTRA_V2_ISSUER = "https://login.microsoftonline.com/{tenantid}/v2.0"

# Called with the verified principal; True (or an exception) means the token is refused.
RevocationCheck = Callable[[Principal], "bool | Awaitable[bool]"]


_DURATIONS = (
    "leeway",
    "max_token_age",
    "max_lifetime",
    "jwks_ttl",
    "jwks_min_ttl",
    "jwks_max_ttl",
    "refetch_cooldown",
    "max_staleness",
    "http_timeout",
)


def check_fetch_url(url: str, what: str = "URL") -> str:
    """https only; plain http only to a loopback address (tests, a sidecar on the same host)."""
    return secure_url(url, what)


def check_discovered_url(url: str, issuer: str) -> str:
    """A ``jwks_uri`` read from a discovery document: https; plain http (to loopback) only when the
    configured issuer is itself an http loopback URL. A document served over https must not point
    the verifier at plain http on this host (``http://127.0.0.1:6379/`` is somebody's Redis)."""
    check_fetch_url(url, "discovered jwks_uri")
    if urlsplit(url).scheme == "https":
        return url
    issuer_parts = urlsplit(issuer)
    if issuer_parts.scheme == "http" and is_loopback_host(issuer_parts.hostname or ""):
        return url
    raise ConfigError("discovered jwks_uri must use https (the issuer is not an http loopback URL)")


def _strings(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class VerifierConfig:
    """How tokens of one issuer are verified. Invalid settings raise :class:`ConfigError` here."""

    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str | None = None
    algorithms: tuple[str, ...] = VERIFIER_ALGORITHMS
    leeway: float = 30.0
    required_claims: tuple[str, ...] = DEFAULT_REQUIRED_CLAIMS
    token_types: tuple[str, ...] = ("at+jwt",)
    extra_header_params: tuple[str, ...] = ()
    # The claim compared with ``audiences`` (Cognito access tokens: client_id).
    audience_claim: str = "aud"
    max_token_age: float | None = None
    max_lifetime: float | None = None
    allowed_tenants: tuple[str, ...] | None = None
    # claim -> expected value, or a predicate on the claim's value (missing claim: None).
    claim_assertions: Mapping[str, Any] = field(default_factory=dict, hash=False)
    forbidden_claims: tuple[str, ...] = ()
    # At least one of these claims must be present (Entra: scp or roles).
    any_of_claims: tuple[str, ...] = ()
    revocation_check: RevocationCheck | None = field(default=None, compare=False)
    # JWKS source (see s2s.verify._jwks): TTL without Cache-Control; the floor under an issuer's
    # max-age (never above jwks_ttl: a shorter jwks_ttl lowers it), and the ceiling.
    jwks_ttl: float = 600.0
    jwks_min_ttl: float = 60.0
    jwks_max_ttl: float = 86_400.0
    refetch_cooldown: float = 30.0
    max_staleness: float = 43_200.0
    http_timeout: float = 5.0
    max_jwks_bytes: int = 256 * 1024
    max_keys: int = 64
    limits: TokenLimits = DEFAULT_LIMITS
    policy: AlgorithmPolicy = field(init=False, repr=False, compare=False)
    header_policy: HeaderPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.issuer, str) or not self.issuer.strip():
            raise ConfigError("issuer is required")
        audiences = _strings(self.audiences)
        if not audiences:
            raise ConfigError("at least one audience is required")
        set_(self, "audiences", audiences)
        set_(self, "policy", AlgorithmPolicy.of(_strings(self.algorithms)))
        set_(self, "algorithms", tuple(sorted(self.policy.algorithms)))
        for name in _DURATIONS:
            value = getattr(self, name)
            # NaN compares false with everything: it would switch a check off, not fail it.
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number of seconds")
        if not 0 <= self.leeway <= MAX_LEEWAY:
            raise ConfigError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        set_(self, "required_claims", _strings(self.required_claims))
        set_(self, "token_types", tuple(normalize_typ(t) for t in self.token_types))
        if not self.token_types:
            raise ConfigError("token_types is empty: no token could be accepted")
        extra = _strings(self.extra_header_params)
        if NEVER_ALLOWED.intersection(extra):
            raise ConfigError(f"{', '.join(sorted(NEVER_ALLOWED))} are never allowed in a token header")
        set_(self, "extra_header_params", extra)
        set_(self, "header_policy", HeaderPolicy.closed(extra, types=frozenset(self.token_types)))
        set_(self, "claim_assertions", MappingProxyType(dict(self.claim_assertions)))
        set_(self, "forbidden_claims", _strings(self.forbidden_claims))
        set_(self, "any_of_claims", _strings(self.any_of_claims))
        if TENANT_PLACEHOLDER in self.issuer:
            if not self.allowed_tenants:
                raise ConfigError("an issuer template needs allowed_tenants")
            if self.jwks_uri is None:
                raise ConfigError("an issuer template needs an explicit jwks_uri")
        if self.allowed_tenants is not None:
            set_(self, "allowed_tenants", _strings(self.allowed_tenants))
        if self.jwks_uri is not None:
            check_fetch_url(self.jwks_uri, "jwks_uri")
        else:
            check_fetch_url(self.issuer, "issuer (used for discovery)")
        for name in ("max_token_age", "max_lifetime"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive")
        if not 0 < self.jwks_ttl <= self.jwks_max_ttl or self.jwks_min_ttl <= 0:
            raise ConfigError(
                "JWKS cache times must be positive, jwks_ttl at most jwks_max_ttl"
                f" (jwks_ttl={self.jwks_ttl:g}, jwks_min_ttl={self.jwks_min_ttl:g},"
                f" jwks_max_ttl={self.jwks_max_ttl:g})"
            )
        # An explicit short jwks_ttl is a wish for short caching: the floor follows it down.
        set_(self, "jwks_min_ttl", min(self.jwks_min_ttl, self.jwks_ttl))
        if self.refetch_cooldown < 0 or self.max_staleness < 0 or self.http_timeout <= 0:
            raise ConfigError("refetch_cooldown, max_staleness and http_timeout must not be negative")
        if self.max_jwks_bytes <= 0 or self.max_keys <= 0:
            raise ConfigError("max_jwks_bytes and max_keys must be positive")
        if self.revocation_check is not None and not callable(self.revocation_check):
            raise ConfigError("revocation_check must be callable")

    # -- presets ---------------------------------------------------------------------------------

    def with_options(self, **changes: Any) -> VerifierConfig:
        return replace(self, **changes)

    @classmethod
    def for_s2s(cls, issuer_url: str, audience: str | tuple[str, ...], **options: Any) -> VerifierConfig:
        issuer = issuer_url.rstrip("/")
        options.setdefault("jwks_uri", f"{issuer}/.well-known/jwks.json")
        return cls(issuer=issuer, audiences=_strings(audience), **options)

    @classmethod
    def for_entra(
        cls,
        tenant_id: str,
        audience: str | tuple[str, ...],
        *,
        allowed_tenants: tuple[str, ...] | list[str] | None = None,
        **options: Any,
    ) -> VerifierConfig:
        """Entra ID v2 access tokens. With ``allowed_tenants`` the app is multi-tenant and
        ``tenant_id`` may be ``organizations`` or ``common`` (it only selects the JWKS)."""
        if allowed_tenants:
            issuer = ENTRA_V2_ISSUER
        else:
            issuer = ENTRA_V2_ISSUER.replace(TENANT_PLACEHOLDER, tenant_id)
            allowed_tenants = (tenant_id,)
        defaults: dict[str, Any] = {
            "jwks_uri": f"https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys",
            "token_types": ("jwt",),
            "extra_header_params": ("x5t",),
            "algorithms": ("RS256",),
            "required_claims": ("iss", "sub", "aud", "exp", "iat", "tid", "azp"),
            "forbidden_claims": ("nonce",),
            "any_of_claims": ("scp", "roles"),
            "allowed_tenants": tuple(allowed_tenants),
        }
        defaults.update(options)
        return cls(issuer=issuer, audiences=_strings(audience), **defaults)

    @classmethod
    def for_okta(
        cls, domain: str, audience: str | tuple[str, ...] = "api://default", *, server: str = "default",
        **options: Any,
    ) -> VerifierConfig:  # fmt: skip
        issuer = f"https://{domain}/oauth2/{server}"
        defaults: dict[str, Any] = {
            "jwks_uri": f"{issuer}/v1/keys",
            "token_types": ("", "jwt", "at+jwt"),
            "algorithms": ("RS256",),
            "required_claims": ("iss", "sub", "aud", "exp", "iat", "cid"),
            "forbidden_claims": ("nonce",),
        }
        defaults.update(options)
        return cls(issuer=issuer, audiences=_strings(audience), **defaults)

    @classmethod
    def for_auth0(cls, domain: str, audience: str | tuple[str, ...], **options: Any) -> VerifierConfig:
        issuer = f"https://{domain}/"
        defaults: dict[str, Any] = {
            "jwks_uri": f"https://{domain}/.well-known/jwks.json",
            "token_types": ("jwt", "at+jwt"),
            "algorithms": ("RS256",),
            "forbidden_claims": ("nonce",),
        }
        defaults.update(options)
        return cls(issuer=issuer, audiences=_strings(audience), **defaults)

    @classmethod
    def for_cognito(
        cls, region: str, user_pool_id: str, client_ids: str | tuple[str, ...], **options: Any
    ) -> VerifierConfig:
        issuer = f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
        defaults: dict[str, Any] = {
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "token_types": ("", "jwt"),
            "algorithms": ("RS256",),
            "audience_claim": "client_id",
            "required_claims": ("iss", "sub", "exp", "iat", "client_id", "token_use"),
            "claim_assertions": {"token_use": "access"},
        }
        defaults.update(options)
        return cls(issuer=issuer, audiences=_strings(client_ids), **defaults)

    @classmethod
    def for_keycloak(
        cls, base_url: str, realm: str, audience: str | tuple[str, ...], **options: Any
    ) -> VerifierConfig:
        issuer = f"{base_url.rstrip('/')}/realms/{realm}"
        defaults: dict[str, Any] = {
            "jwks_uri": f"{issuer}/protocol/openid-connect/certs",
            "token_types": ("jwt", "at+jwt"),
            "claim_assertions": {"typ": "Bearer"},
        }
        defaults.update(options)
        return cls(issuer=issuer, audiences=_strings(audience), **defaults)

    @classmethod
    def from_discovery(
        cls, issuer_url: str, audience: str | tuple[str, ...], **options: Any
    ) -> VerifierConfig:
        """Keys from the issuer's discovery document (OpenID, then RFC 8414)."""
        options["jwks_uri"] = None
        return cls(issuer=issuer_url, audiences=_strings(audience), **options)

    @classmethod
    def from_env(
        cls,
        prefix: str = "S2S_VERIFIER_",
        environ: Mapping[str, str] | None = None,
        *,
        secrets: SecretSource | None = None,
    ) -> VerifierConfig:
        """``{prefix}ISSUER`` and ``{prefix}AUDIENCE`` (comma or space separated) are required;
        JWKS_URI, ALGORITHMS, LEEWAY, REQUIRED_CLAIMS, TOKEN_TYPES, MAX_TOKEN_AGE, MAX_LIFETIME,
        ALLOWED_TENANTS, JWKS_TTL, REFETCH_COOLDOWN, MAX_STALENESS, HTTP_TIMEOUT are optional.
        Read through the one settings reader (:mod:`s2s._env`): durations take units, ``aws-sm://``
        references are resolved, and every missing or invalid variable is named in one line."""
        from s2s._env import EnvReader  # noqa: PLC0415 - the reader is shared by every package

        env = EnvReader(prefix, environ, secrets=secrets)
        issuer = env.require("ISSUER").strip()
        jwks_uri = (env.text("JWKS_URI") or "").strip() or None
        audiences = env.strings("AUDIENCE")
        if not audiences and env.given("AUDIENCE"):
            env.invalid("AUDIENCE", "names no audience")
        elif not audiences:
            env.require("AUDIENCE")
        # No JWKS_URI: the keys are found by discovery from the issuer (as from_discovery does).
        values: dict[str, Any] = {"issuer": issuer, "audiences": audiences, "jwks_uri": jwks_uri}
        durations = (
            "LEEWAY",
            "MAX_TOKEN_AGE",
            "MAX_LIFETIME",
            "JWKS_TTL",
            "REFETCH_COOLDOWN",
            "MAX_STALENESS",
        )
        for name in (*durations, "HTTP_TIMEOUT"):
            if env.given(name):
                # The config refuses what is out of range (NaN included) in its own words.
                values[name.lower()] = env.duration(name, 0.0, checked=False)
        for name in ("ALGORITHMS", "REQUIRED_CLAIMS", "ALLOWED_TENANTS"):
            if env.given(name):
                values[name.lower()] = env.strings(name)
        if env.given("TOKEN_TYPES"):
            values["token_types"] = tuple("" if t == "none" else t for t in env.strings("TOKEN_TYPES"))
        return env.build(cls, values, {"audiences": "AUDIENCE"})
