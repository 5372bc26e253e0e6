"""Observability settings from ``S2S_*`` variables (through the one settings reader)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from s2s._env import EnvReader
from s2s.errors import ConfigError
from s2s.http import is_loopback_host

__all__ = ["ObserveSettings"]


@dataclass(frozen=True, slots=True)
class ObserveSettings:
    """``S2S_METRICS`` (on by default): the issuer's ``/metrics``. ``S2S_METRICS_PORT``: serve the
    metrics on this port of ``S2S_METRICS_HOST`` (127.0.0.1 by default) instead of the main port;
    a host that is not loopback needs the token. ``S2S_METRICS_TOKEN``: the bearer token the
    metrics ask for (may be an ``aws-sm://`` reference); without it ``/metrics`` on the main port
    answers loopback callers only (they list the client ids). ``S2S_OTEL``: OpenTelemetry spans
    (needs ``s2s[otel]``).
    ``S2S_LOG_FORMAT``: ``text`` or ``json``. ``S2S_AUDIT_LOG``: a file for the audit events."""

    metrics: bool = True
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_token: str | None = field(default=None, repr=False)
    otel: bool = False
    log_format: str = "text"
    audit_log: str | None = None

    def __post_init__(self) -> None:
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise ConfigError("metrics_port must be a port number")
        if self.log_format not in ("text", "json"):
            raise ConfigError("log_format must be text or json")
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            raise ConfigError("metrics_token must be at least 16 characters")
        if (
            self.metrics
            and self.metrics_port is not None
            and self.metrics_token is None
            and not is_loopback_host(self.metrics_host)
        ):
            # The metrics list every client id and audience: not for whoever reaches that address.
            raise ConfigError(
                f"metrics_host {self.metrics_host} is not a loopback address and no metrics_token is"
                " set: set a metrics_token (that port then asks for it too) or bind 127.0.0.1"
            )

    @classmethod
    def from_env(cls, prefix: str = "S2S_", environ: Mapping[str, str] | None = None) -> ObserveSettings:
        env = EnvReader(prefix, environ)
        values = {
            "metrics": env.flag("METRICS", True),
            "metrics_port": (
                env.integer("METRICS_PORT", 0, minimum=1, maximum=65535)
                if env.given("METRICS_PORT")
                else None
            ),
            "metrics_host": env.text("METRICS_HOST") or "127.0.0.1",
            "metrics_token": env.text("METRICS_TOKEN"),
            "otel": env.flag("OTEL", False),
            "log_format": env.choice("LOG_FORMAT", ("text", "json"), "text"),
            "audit_log": env.text("AUDIT_LOG"),
        }
        return env.build(cls, values)
