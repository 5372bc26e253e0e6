"""Issuer settings, read once from ``S2S_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from s2s.errors import ConfigError
from s2s.keys.rotation import RotationPolicy

__all__ = ["IssuerSettings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


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
    token_ttl: float = 300
    rotation: RotationPolicy = field(default_factory=RotationPolicy)
    run_rotation: bool = True
    create_keys: bool = True
    rate_limit: float = 20.0
    rate_burst: float = 40.0
    max_body_bytes: int = 16 * 1024
    assertion_max_lifetime: float = 300
    host: str = "127.0.0.1"
    port: int = 8000

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
        if not 0 < self.assertion_max_lifetime <= 3600:
            raise ConfigError("assertion_max_lifetime must be > 0 and <= 3600 seconds")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is not a TCP port")

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth2/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"

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
    def from_env(cls, prefix: str = "S2S_", environ: Mapping[str, str] | None = None) -> IssuerSettings:
        """``S2S_ISSUER``, ``S2S_KEYSTORE``, ``S2S_CLIENTS``, ``S2S_TOKEN_TTL``, ``S2S_RUN_ROTATION``,
        ``S2S_CREATE_KEYS``, ``S2S_RATE_LIMIT``, ``S2S_RATE_BURST``, ``S2S_MAX_BODY_BYTES``, ``S2S_HOST``,
        ``S2S_PORT``; rotation timing (``S2S_JWKS_MAX_AGE``, ``S2S_POLL_INTERVAL``,
        ``S2S_MAX_TOKEN_TTL``, ...) via :meth:`RotationPolicy.from_env`."""
        env = os.environ if environ is None else environ
        d = cls()
        port = _number(env, f"{prefix}PORT", d.port)
        max_body = _number(env, f"{prefix}MAX_BODY_BYTES", d.max_body_bytes)
        if port != int(port) or max_body != int(max_body):
            raise ConfigError(f"{prefix}PORT and {prefix}MAX_BODY_BYTES must be integers")
        return cls(
            issuer=env.get(f"{prefix}ISSUER", d.issuer),
            keystore=env.get(f"{prefix}KEYSTORE", d.keystore),
            clients=env.get(f"{prefix}CLIENTS", d.clients),
            token_ttl=_number(env, f"{prefix}TOKEN_TTL", d.token_ttl),
            rotation=RotationPolicy.from_env(prefix, env),
            run_rotation=_flag(env, f"{prefix}RUN_ROTATION", d.run_rotation),
            create_keys=_flag(env, f"{prefix}CREATE_KEYS", d.create_keys),
            rate_limit=_number(env, f"{prefix}RATE_LIMIT", d.rate_limit),
            rate_burst=_number(env, f"{prefix}RATE_BURST", d.rate_burst),
            max_body_bytes=int(max_body),
            assertion_max_lifetime=_number(env, f"{prefix}ASSERTION_MAX_LIFETIME", d.assertion_max_lifetime),
            host=env.get(f"{prefix}HOST", d.host),
            port=int(port),
        )
