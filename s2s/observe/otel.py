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
from collections.abc import Iterator
from typing import Any

from s2s.errors import MissingExtra
from s2s.observe._observer import Observer, Span, SpanValue

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
