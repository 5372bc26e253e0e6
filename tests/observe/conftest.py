from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from s2s.clock import FakeClock
from s2s.issuer import Client, InMemoryClientRegistry, IssuerSettings
from s2s.keys import RotationPolicy
from s2s.litestar.issuer import create_issuer_app
from s2s.observe import HUB, AuditLog, ObserveSettings, subscribe, unsubscribe
from tests.issuer.helpers import AUDIENCE, ISSUER, SECRET_HASH, PkjClient, make_pkj
from tests.observe.helpers import METRICS_TOKEN
from tests.support import MemoryKeyStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def pkj() -> PkjClient:
    return make_pkj()


@pytest.fixture
def registry(pkj: PkjClient) -> InMemoryClientRegistry:
    return InMemoryClientRegistry(
        [
            Client(client_id="svc", audiences=(AUDIENCE,), scopes=("orders:read",), secret_hash=SECRET_HASH),
            Client(client_id=pkj.client_id, audiences=(AUDIENCE,), jwks=(pkj.public_jwk,)),
        ]
    )


def make_app(
    registry: InMemoryClientRegistry,
    clock: FakeClock,
    *,
    observe: ObserveSettings | None = None,
    rate: float = 1000,
    burst: int = 1000,
) -> Litestar:
    settings = IssuerSettings(
        issuer=ISSUER, rotation=RotationPolicy(), run_rotation=True, rate_limit=rate, rate_burst=burst
    )
    return create_issuer_app(
        settings,
        store=MemoryKeyStore(),
        registry=registry,
        clock=clock,
        reload_loop=False,
        observe=observe or ObserveSettings(metrics_token=METRICS_TOKEN),
    )


@pytest.fixture
def app(registry: InMemoryClientRegistry, clock: FakeClock) -> Litestar:
    return make_app(registry, clock)


@pytest.fixture
def client(app: Litestar, caplog: pytest.LogCaptureFixture) -> Iterator[TestClient[Litestar]]:
    caplog.set_level(logging.DEBUG)
    with TestClient(app, base_url=ISSUER) as tc:
        yield tc


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Spans of every observer over the process-wide hub, kept in memory (OpenTelemetry's SDK)."""
    from s2s.observe.otel import OtelObserver

    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = OtelObserver(provider)
    subscribe(observer)
    yield exporter
    unsubscribe(observer)
    provider.shutdown()


@pytest.fixture(autouse=True)
def fresh_audit_log() -> Iterator[None]:
    """A fresh audit subscriber on the hub per test: the per-second bound on failure events is
    process-wide, and another test's flood must not leave this one's events out."""
    old = [o for o in HUB.observers if isinstance(o, AuditLog)]
    new = AuditLog()
    for o in old:
        HUB.unsubscribe(o)
    HUB.subscribe(new)
    yield
    HUB.unsubscribe(new)
    for o in old:
        HUB.subscribe(o)
