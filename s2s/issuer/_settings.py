"""Issuer settings, read once from ``S2S_*`` environment variables (through :mod:`s2s._env`).

Any ``S2S_*`` variable may hold an ``aws-sm://<name>[#<field>][?stage=...]`` reference instead of
its value; :meth:`IssuerSettings.from_env` resolves them at startup, and a reference that cannot be
read stops startup with one :class:`~s2s.secrets.SecretError` line naming the variable and the
reference (never a value). ``S2S_KEYSTORE`` and ``S2S_CLIENTS`` are the exception: there an
``aws-sm://NAME`` is the *location* of a store (a secret the issuer reads and writes itself), so
those two are never resolved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from s2s._env import EnvReader
from s2s.errors import ConfigError
from s2s.keys._factories import SIGNERS, KeyFactories
from s2s.keys._rotation import RotationPolicy
from s2s.oauth import JWKS_PATH, TOKEN_PATH

if TYPE_CHECKING:
    from s2s.secrets._source import SecretSource

__all__ = ["STATE_FAILURE_MODES", "IssuerSettings", "default_state", "parse_state_url"]

# What a replica does while its shared state store is unavailable: refuse token requests (503,
# not ready), or keep issuing with its own in-memory state (s2s/issuer/_fallback_state.py).
STATE_FAILURE_MODES = ("closed", "local")
# The pod's own service-account token (the Kubernetes API server's JWKS endpoint wants it).
KUBERNETES_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def parse_state_url(url: str) -> tuple[str, str | None, str | None]:
    """``(kind, location, region)`` for ``memory``, ``sqlite://PATH`` or
    ``dynamodb://TABLE[?region=R]`` (location: the file or the table)."""
    text = url.strip()
    if text in ("memory", "memory://"):
        return "memory", None, None
    if text.startswith("sqlite://"):
        path = text.removeprefix("sqlite://")
        if not path:
            raise ConfigError("S2S_STATE: write sqlite://PATH (the default is beside the key store)")
        return "sqlite", path, None
    if text.startswith("dynamodb://"):
        parts = urlsplit(text)
        table = parts.netloc + parts.path
        if not table or "/" in table:
            raise ConfigError("S2S_STATE: write dynamodb://TABLE_NAME (optionally ?region=REGION)")
        region = parse_qs(parts.query).get("region", [None])[0]
        return "dynamodb", table, region
    raise ConfigError(
        f"S2S_STATE: unknown state store {text.split('://', 1)[0]!r}; "
        "use sqlite://PATH, dynamodb://TABLE or memory (tests only)"
    )


def default_state(keystore: str) -> str:
    """Where state lives when ``S2S_STATE`` is unset: SQLite beside a file key store
    (``keys/state.sqlite3`` for ``file://keys``); ``keys/state.sqlite3`` otherwise."""
    if keystore.startswith("file://") or "://" not in keystore:
        directory = keystore.removeprefix("file://") or "."
    else:
        directory = "keys"
    return f"sqlite://{directory.rstrip('/') or '/'}/state.sqlite3"


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """Everything the issuer needs.

    The JWKS ``max-age``, the key store poll interval and the longest token lifetime are not
    separate settings: they are read from ``rotation`` (the :class:`RotationPolicy`), because the
    policy's timing guarantees hold only if the issuer serves exactly those values.
    """

    issuer: str = "http://127.0.0.1:8000"
    keystore: str = "file://keys"
    clients: str = "file://keys/clients.json"
    token_ttl: float = 1800
    rotation: RotationPolicy = field(default_factory=RotationPolicy)
    run_rotation: bool = True
    create_keys: bool = True
    rate_limit: float = 20.0
    rate_burst: float = 40.0
    max_body_bytes: int = 16 * 1024
    # Seconds to receive a token request's whole body (a trickling body gets 408, not a worker).
    body_timeout: float = 10.0
    assertion_max_lifetime: float = 3600
    host: str = "127.0.0.1"
    port: int = 8000
    # sqlite://PATH | dynamodb://TABLE[?region=R] | memory: where replay and rate-limit state
    # lives. from_env defaults to SQLite beside the key store (default_state); settings built in
    # code (tests, embedding) default to memory.
    state: str = "memory"
    # closed: state down -> token requests 503 and /ready 503. local: this replica's memory stands
    # in (replay protection per replica until the store answers); /ready 200, saying degraded.
    state_failure_mode: str = "closed"
    signer: str | None = None
    kms_deletion_window_days: int = 30
    # PEM files for HTTPS served by `s2s serve` itself (both or neither); paths, never contents.
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # Also emit scp/cid/azp (Okta/Entra conventions) in every token; a client may override.
    claim_aliases: bool = False
    # Where a federated credential's token_file may be (it is sent as a bearer token to the
    # credential's JWKS URL): whoever writes the registry must not pick any file the issuer reads.
    federation_token_dirs: tuple[str, ...] = (KUBERNETES_ACCOUNT_DIR,)

    def __post_init__(self) -> None:
        issuer = self.issuer.rstrip("/")
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"issuer {self.issuer!r} must be an http(s) URL without query or fragment (RFC 8414)"
            )
        object.__setattr__(self, "issuer", issuer)
        if not 0 < self.token_ttl <= self.rotation.max_token_ttl:
            raise ConfigError(
                f"token_ttl {self.token_ttl:g}s must be > 0 and <= max_token_ttl "
                f"{self.rotation.max_token_ttl:g}s (the rotation policy keeps old keys that long)"
            )
        if self.rotation.poll_interval <= 0:
            raise ConfigError("poll_interval must be > 0: replicas must reload the keyset")
        if self.rate_limit <= 0 or self.rate_burst < 1:
            raise ConfigError("rate_limit must be > 0 and rate_burst >= 1")
        if not 256 <= self.max_body_bytes <= 1024 * 1024:
            raise ConfigError("max_body_bytes must be between 256 and 1048576")
        if not 0 < self.body_timeout <= 300:
            raise ConfigError("body_timeout must be > 0 and <= 300 seconds")
        if not 0 < self.assertion_max_lifetime <= 3600:
            raise ConfigError("assertion_max_lifetime must be > 0 and <= 3600 seconds")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is not a TCP port")
        KeyFactories.validate(self.signer, self.kms_deletion_window_days)
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("ssl_certfile and ssl_keyfile go together: set both for HTTPS, or neither")
        if not all(isinstance(d, str) and os.path.isabs(d) for d in self.federation_token_dirs):
            raise ConfigError("federation_token_dirs must list absolute directories")
        # Validated here so a typo stops startup, not the first token request.
        parse_state_url(self.state)
        if self.state_failure_mode not in STATE_FAILURE_MODES:
            raise ConfigError(f"state_failure_mode must be one of {', '.join(STATE_FAILURE_MODES)}")

    def key_factories(self) -> KeyFactories:
        """Where this issuer makes new keys (``signer``), with its KMS deletion window."""
        return KeyFactories(self.signer, kms_deletion_window_days=self.kms_deletion_window_days)

    @property
    def tls(self) -> bool:
        """Whether ``s2s serve`` speaks HTTPS itself (a certificate and its key are set)."""
        return self.ssl_certfile is not None

    @property
    def token_endpoint(self) -> str:
        return self.issuer + TOKEN_PATH

    @property
    def jwks_uri(self) -> str:
        return self.issuer + JWKS_PATH

    @property
    def jwks_max_age(self) -> int:
        return int(self.rotation.jwks_max_age)

    @property
    def poll_interval(self) -> float:
        return self.rotation.poll_interval

    @property
    def max_token_ttl(self) -> float:
        return self.rotation.max_token_ttl

    @classmethod
    def from_env(
        cls,
        prefix: str = "S2S_",
        environ: Mapping[str, str] | None = None,
        *,
        secrets: SecretSource | None = None,
    ) -> IssuerSettings:
        """``S2S_ISSUER``, ``S2S_KEYSTORE``, ``S2S_CLIENTS``, ``S2S_TOKEN_TTL``, ``S2S_RUN_ROTATION``,
        ``S2S_CREATE_KEYS``, ``S2S_RATE_LIMIT``, ``S2S_RATE_BURST``, ``S2S_MAX_BODY_BYTES``,
        ``S2S_BODY_TIMEOUT``, ``S2S_HOST``, ``S2S_PORT``, ``S2S_STATE``, ``S2S_STATE_FAILURE_MODE``,
        ``S2S_SIGNER``, ``S2S_KMS_DELETION_WINDOW_DAYS``,
        ``S2S_SSL_CERTFILE``, ``S2S_SSL_KEYFILE`` (PEM file paths, both or neither),
        ``S2S_CLAIM_ALIASES``, ``S2S_FEDERATION_TOKEN_DIRS`` (where federated credentials'
        ``token_file`` may be; default the pod's service-account directory); rotation timing
        (``S2S_JWKS_MAX_AGE``, ``S2S_POLL_INTERVAL``, ``S2S_MAX_TOKEN_TTL``, ...) as
        :meth:`RotationPolicy.from_env` reads it. ``aws-sm://`` references are resolved (``secrets``
        replaces the Secrets Manager source, e.g. in tests); every problem is reported in one line."""
        env = EnvReader(prefix, environ, secrets=secrets)
        d = cls()
        rotation = RotationPolicy.read(env)
        keystore = env.location("KEYSTORE", d.keystore)
        token_dirs = env.strings("FEDERATION_TOKEN_DIRS", d.federation_token_dirs)
        if not all(os.path.isabs(p) for p in token_dirs):
            env.invalid("FEDERATION_TOKEN_DIRS", "must list absolute directories")
        values = {
            "issuer": env.text("ISSUER", d.issuer),
            "keystore": keystore,
            "clients": env.location("CLIENTS", d.clients),
            "token_ttl": env.duration("TOKEN_TTL", d.token_ttl),
            "run_rotation": env.flag("RUN_ROTATION", d.run_rotation),
            "create_keys": env.flag("CREATE_KEYS", d.create_keys),
            "rate_limit": env.number("RATE_LIMIT", d.rate_limit),
            "rate_burst": env.number("RATE_BURST", d.rate_burst),
            "max_body_bytes": env.integer(
                "MAX_BODY_BYTES", d.max_body_bytes, minimum=256, maximum=1024 * 1024
            ),
            "body_timeout": env.duration("BODY_TIMEOUT", d.body_timeout),
            "assertion_max_lifetime": env.duration("ASSERTION_MAX_LIFETIME", d.assertion_max_lifetime),
            "host": env.text("HOST", d.host),
            "port": env.integer("PORT", d.port, minimum=1, maximum=65535),
            # Unset: SQLite beside a file key store (shared by the issuer processes of this host).
            "state": env.text("STATE", None) or default_state(keystore),
            "state_failure_mode": env.choice("STATE_FAILURE_MODE", STATE_FAILURE_MODES, d.state_failure_mode),
            "signer": env.choice("SIGNER", SIGNERS),
            # Its range is checked once, by KeyFactories.validate (the variable is named by build).
            "kms_deletion_window_days": env.integer("KMS_DELETION_WINDOW_DAYS", d.kms_deletion_window_days),
            "ssl_certfile": env.text("SSL_CERTFILE"),
            "ssl_keyfile": env.text("SSL_KEYFILE"),
            "claim_aliases": env.flag("CLAIM_ALIASES", d.claim_aliases),
            "federation_token_dirs": token_dirs,
        }
        # The issuer checks its settings against the policy's timings: name those variables too.
        timings = {f.name: f.name.upper() for f in fields(RotationPolicy)}
        return env.build(cls, {**values, "rotation": env.build(RotationPolicy, rotation)}, timings)
