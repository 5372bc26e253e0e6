"""MSAL calls through the real EntraApp against the local HTTPS authority of tests/entra (issue 14)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from s2s.entra import EntraApp
from s2s.observe import subscribe, unsubscribe
from s2s.observe.prometheus import PrometheusObserver
from tests.entra.conftest import entra, make_app, sleeps, test_ca  # noqa: F401 - the fixtures
from tests.observe.helpers import sample

pytestmark = pytest.mark.anyio


@pytest.fixture
def metrics() -> Iterator[PrometheusObserver]:
    metrics = PrometheusObserver()
    subscribe(metrics)
    yield metrics
    unsubscribe(metrics)


async def test_msal_calls_are_counted_and_traced(
    make_app: Callable[..., EntraApp],  # noqa: F811 - the fixture imported above
    metrics: PrometheusObserver,
    exporter: InMemorySpanExporter,
) -> None:
    app = make_app()
    token = await app.for_client("api://downstream/.default")
    await app.for_client("api://downstream/.default")  # MSAL's cache: still one MSAL call each
    text = metrics.render()[0].decode()
    assert sample(text, "s2s_msal_calls_total", flow="client_credentials", outcome="ok") == 2
    assert sample(text, "s2s_msal_call_duration_seconds_count", flow="client_credentials") == 2
    msal = [s for s in exporter.get_finished_spans() if s.name == "s2s.msal"]
    assert [dict(s.attributes or {}) for s in msal] == [{"s2s.msal.flow": "client_credentials"}] * 2
    assert token.token not in text
