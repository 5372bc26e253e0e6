"""OpenTelemetry spans for s2s (the ``s2s[otel]`` extra): :class:`OtelObserver`.

Spans (names are stable; attributes never hold a token, secret, assertion or key material):

* ``s2s.token`` (the token endpoint), children ``s2s.client_auth`` and ``s2s.sign``;
* ``s2s.jwks.fetch`` (a verifier's JWKS refresh), ``s2s.verify`` (a verification that ran the
  checks), ``s2s.guard`` (a Litestar guard's decision);
* ``s2s.client.token_request`` (a token client's request), ``s2s.msal`` (an MSAL call).

A failing block marks its span ERROR with the exception's *type* only: messages of foreign
exceptions are not trusted to be free of secrets, so neither they nor tracebacks are recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from s2s.errors import MissingExtra
from s2s.observe._observer import Observer, Span, SpanValue
from s2s.observe._reasons import reason_code

try:
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
except ImportError:  # pragma: no cover - exercised without the extra
    raise MissingExtra("otel", "opentelemetry-api") from None

__all__ = ["TRACER_NAME", "OtelObserver"]

TRACER_NAME = "s2s"


class _Attributes:
    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def set(self, key: str, value: SpanValue) -> None:
        self._span.set_attribute(key, value)


def _annotate(**attributes: SpanValue) -> None:
    """Attributes for the span open around an event (a no-op outside any recording span)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


class OtelObserver(Observer):
    """Spans through an OpenTelemetry tracer (``tracer_provider``, or the global provider)."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer_provider: object | None = None) -> None:
        provider: Any = tracer_provider
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=provider)

    def span(self, name: str, **attributes: SpanValue) -> contextlib.AbstractContextManager[Span]:
        return self._span(name, attributes)

    @contextlib.contextmanager
    def _span(self, name: str, attributes: dict[str, SpanValue]) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield _Attributes(span)
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.set_attribute("error.type", type(exc).__name__)
                raise

    # Events annotate the s2s span open around them, with bounded values only (as the metrics).
    def token_issued(
        self,
        client_id: str,
        audience: str,
        scopes: Sequence[str],
        *,
        jti: str,
        kid: str,
        expires_at: int,
        source: str | None,
    ) -> None:
        _annotate(**{"s2s.client_id": client_id, "s2s.audience": audience, "s2s.kid": kid})

    def token_refused(self, error: str, reason: str) -> None:
        _annotate(**{"s2s.error": error, "s2s.reason": reason})

    def client_auth_failed(self, client_id: str, method: str, reason: str, source: str | None) -> None:
        _annotate(**{"s2s.client_auth.method": method, "s2s.client_auth.reason": reason_code(method, reason)})

    def rate_limited(self, client_id: str, budget: str, source: str | None) -> None:
        _annotate(**{"s2s.rate_limited": budget})

    def verified(self, issuer: str, refusal: str | None, cached: bool) -> None:
        if not cached:
            _annotate(**{"s2s.issuer": issuer, "s2s.result": refusal or "ok"})

    def client_request(self, client_id: str, outcome: str, seconds: float) -> None:
        _annotate(**{"s2s.client_id": client_id, "s2s.outcome": outcome})
