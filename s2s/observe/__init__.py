"""Observability: metrics, traces and the audit trail, behind one no-op-by-default seam.

The core calls :class:`Observer` methods (typed events and :meth:`Observer.span`); subscribers
turn them into Prometheus metrics (:mod:`s2s.observe.prometheus`, ``prometheus_client``),
OpenTelemetry spans (:mod:`s2s.observe.otel`, the ``s2s[otel]`` extra) and audit events
(:class:`AuditLog`, JSON lines on the ``s2s.audit`` logger). This package imports neither
``prometheus_client`` nor ``opentelemetry``: their modules are imported only by who uses them.

:data:`HUB` is the process-wide observer that library objects use when given none (verifiers,
token clients, MSAL wrappers, the CLI): it starts with the audit log only; :func:`subscribe` adds
more (:func:`enable_tracing`, a metrics route). An issuer app gets its own
``Fanout([HUB, its PrometheusObserver])``, so each app instance counts in its own registry.
"""

from __future__ import annotations

from s2s.observe._audit import (
    AUDIT_LOGGER,
    AuditLog,
    JsonFormatter,
    audit_file,
    configure_logging,
    log_format,
)
from s2s.observe._changes import report_key_changes
from s2s.observe._observer import NULL_SPAN, Fanout, Observer, Span, SpanValue, observed_msal
from s2s.observe._settings import ObserveSettings

__all__ = [
    "AUDIT_LOGGER",
    "HUB",
    "NULL_SPAN",
    "AuditLog",
    "Fanout",
    "JsonFormatter",
    "ObserveSettings",
    "Observer",
    "Span",
    "SpanValue",
    "audit_file",
    "cli_observer",
    "configure_logging",
    "enable_tracing",
    "log_format",
    "observed_msal",
    "report_key_changes",
    "setup_from_env",
    "subscribe",
    "unsubscribe",
]

HUB = Fanout([AuditLog()])


def subscribe(observer: Observer) -> None:
    """Send every event of the process-wide :data:`HUB` to ``observer`` too."""
    HUB.subscribe(observer)


def unsubscribe(observer: Observer) -> None:
    HUB.unsubscribe(observer)


def enable_tracing(tracer_provider: object | None = None) -> Observer:
    """Subscribe OpenTelemetry spans (needs ``pip install 's2s[otel]'``); returns the subscriber.
    ``tracer_provider`` defaults to the global one OpenTelemetry's own setup configured."""
    from s2s.observe.otel import OtelObserver  # noqa: PLC0415 - the extra is imported only here

    for existing in HUB.observers:
        if isinstance(existing, OtelObserver) and tracer_provider is None:
            return existing
    observer = OtelObserver(tracer_provider)
    subscribe(observer)
    return observer


def cli_observer() -> Observer:
    """The observer of a CLI command: :data:`HUB`, with ``S2S_AUDIT_LOG`` honoured."""
    audit_file()
    return HUB


def setup_from_env(settings: ObserveSettings | None = None) -> ObserveSettings:
    """What a hosting process does at start: spans when ``S2S_OTEL`` is on."""
    settings = settings or ObserveSettings.from_env()
    if settings.otel:
        enable_tracing()
    return settings
