from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar

from s2s.clock import FakeClock
from s2s.issuer import Client, InMemoryClientRegistry, IssuerSettings
from s2s.keys import RotationPolicy
from s2s.litestar.issuer import IssuerRuntime, create_issuer_app
from tests.issuer.helpers import SECRET_HASH, PkjClient, make_pkj
from tests.support import MemoryKeyStore, free_port

AUDIENCE = "https://orders.internal"
OTHER_AUDIENCE = "https://billing.internal"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    # The issuer checks assertion times with its clock; PyJWT checks tokens with the real one.
    return FakeClock(time.time())


@pytest.fixture
def pkj() -> PkjClient:
    return make_pkj("pkj")


def issuer_settings(issuer: str) -> IssuerSettings:
    return IssuerSettings(issuer=issuer, rotation=RotationPolicy(), rate_limit=10_000, rate_burst=10_000)


def issuer_registry(pkj: PkjClient) -> InMemoryClientRegistry:
    return InMemoryClientRegistry(
        [
            Client(
                client_id="svc",
                audiences=(AUDIENCE, OTHER_AUDIENCE),
                scopes=("orders:read", "orders:write"),
                secret_hash=SECRET_HASH,
            ),
            Client(
                client_id=pkj.client_id,
                audiences=(AUDIENCE,),
                scopes=("orders:read",),
                jwks=(pkj.public_jwk,),
            ),
        ]
    )


def issuer_app(issuer: str, pkj: PkjClient, clock: FakeClock) -> Litestar:
    app = create_issuer_app(
        issuer_settings(issuer),
        store=MemoryKeyStore(),
        registry=issuer_registry(pkj),
        clock=clock,
        reload_loop=False,
    )
    # httpx.ASGITransport runs no lifespan: load (create) the keyset as startup would.
    runtime: IssuerRuntime = app.state.s2s_issuer
    runtime.keys.refresh()
    return app


@dataclass
class Counting(httpx.AsyncBaseTransport):
    """Counts requests per path before passing them on; ``gate`` may hold them back."""

    inner: httpx.AsyncBaseTransport
    counts: dict[str, int] = field(default_factory=dict)
    gate: Callable[[], Any] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.counts[request.url.path] = self.counts.get(request.url.path, 0) + 1
        if self.gate is not None:
            await self.gate()
        return await self.inner.handle_async_request(request)


@pytest.fixture
def asgi_issuer(pkj: PkjClient, clock: FakeClock) -> Litestar:
    return issuer_app("https://issuer.test", pkj, clock)


@pytest.fixture
def counting(asgi_issuer: Litestar) -> Counting:
    return Counting(httpx.ASGITransport(app=asgi_issuer))


@dataclass
class LiveIssuer:
    url: str
    app: Litestar


@pytest.fixture
def live_issuer(pkj: PkjClient, clock: FakeClock) -> Iterator[LiveIssuer]:
    """The issuer app under uvicorn in a thread on 127.0.0.1 (httpx sync clients cannot use ASGI)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = issuer_app(url, pkj, clock)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveIssuer(url, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
