from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from s2s.issuer import Client, InMemoryClientRegistry, IssuerSettings
from s2s.litestar.issuer import IssuerRuntime, create_issuer_app
from tests.issuer.helpers import SECRET, SECRET_HASH
from tests.support import MemoryKeyStore, free_port

__all__ = ["AUDIENCE", "CLIENT_ID", "LiveIssuer"]

AUDIENCE = "https://api.example.internal"
CLIENT_ID = "demo"


@dataclass
class LiveIssuer:
    url: str


@pytest.fixture(scope="module")
def live_issuer() -> Iterator[LiveIssuer]:
    """A real issuer under uvicorn on 127.0.0.1, registered like `s2s serve --demo`'s client."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    registry = InMemoryClientRegistry(
        [
            Client(
                client_id=CLIENT_ID,
                audiences=(AUDIENCE,),
                scopes=("orders:read", "orders:write"),
                secret_hash=SECRET_HASH,
            )
        ]
    )
    app = create_issuer_app(
        IssuerSettings(issuer=url, rate_limit=10_000, rate_burst=10_000),
        store=MemoryKeyStore(),
        registry=registry,
        reload_loop=False,
    )
    runtime: IssuerRuntime = app.state.s2s_issuer
    runtime.keys.refresh()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the issuer did not start")
        time.sleep(0.02)
    yield LiveIssuer(url)
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def docs_env(live_issuer: LiveIssuer, monkeypatch: pytest.MonkeyPatch) -> LiveIssuer:
    """The environment the pages tell the reader to set."""
    for name in [n for n in __import__("os").environ if n.startswith("S2S_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("S2S_ISSUER", live_issuer.url)
    monkeypatch.setenv("S2S_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("S2S_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("S2S_VERIFIER_ISSUER", live_issuer.url)
    monkeypatch.setenv("S2S_VERIFIER_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("S2S_ENTRA_TENANT_ID", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("S2S_ENTRA_CLIENT_ID", "66666666-7777-8888-9999-000000000000")
    monkeypatch.setenv("S2S_ENTRA_CLIENT_SECRET", "not-a-real-secret")
    return live_issuer
