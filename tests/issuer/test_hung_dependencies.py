"""A hung dependency never freezes the replica (issue 10 item 1): token requests of an issuer
whose state store blocks on the network run in a bounded worker pool with a deadline, so /health
and the JWKS answer at once and the token request gets 503 + Retry-After after about one AWS read
timeout."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.issuer import InMemoryClientRegistry, IssuerSettings
from s2s.litestar.issuer import create_issuer_app
from tests.issuer.helpers import AUDIENCE, FORM, ISSUER, SECRET, basic
from tests.support import MemoryKeyStore


class _HungState:
    """A network state store (DynamoDB-like) whose calls hang until released."""

    blocks_on_io = True
    url = "fake://hung"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.hang = False
        self.entered = threading.Event()

    def _wait(self) -> None:
        if self.hang:
            self.entered.set()
            self.release.wait(60)

    def seen_or_add(self, key: str, expires_at: float) -> bool:
        self._wait()
        return False

    def acquire(self, key: str) -> float:
        self._wait()
        return 0.0


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        out["response"] = fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_hung_state_store_stalls_neither_health_nor_jwks_and_tokens_get_503(
    settings: IssuerSettings,
    registry: InMemoryClientRegistry,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("S2S_AWS_CONNECT_TIMEOUT", "0.1")
    monkeypatch.setenv("S2S_AWS_READ_TIMEOUT", "0.4")
    state = _HungState()
    app = create_issuer_app(
        settings, store=MemoryKeyStore(), registry=registry, clock=clock, state=state, reload_loop=False
    )
    form = f"grant_type=client_credentials&audience={AUDIENCE}"
    headers = {"Content-Type": FORM, "Authorization": basic("svc", SECRET)}
    try:
        with TestClient(app, base_url=ISSUER) as tc:
            assert tc.post("/oauth2/token", content=form, headers=headers).status_code == 200
            state.hang = True
            token, answer = _in_thread(lambda: tc.post("/oauth2/token", content=form, headers=headers))
            assert state.entered.wait(30), "the token request never reached the state store"
            # The state store is hung right now: the replica must still answer these.
            health, health_answer = _in_thread(lambda: tc.get("/health"))
            jwks, jwks_answer = _in_thread(lambda: tc.get("/.well-known/jwks.json"))
            health.join(10)
            jwks.join(10)
            assert health_answer["response"].status_code == 200
            assert jwks_answer["response"].status_code == 200
            token.join(20)  # the deadline (0.5 s here) answers it, not the hung call
            response = answer["response"]
            assert not state.release.is_set()
            assert response.status_code == 503
            assert response.json()["error"] == "temporarily_unavailable"
            assert response.headers["retry-after"] and response.headers["cache-control"] == "no-store"
            state.release.set()
            state.hang = False
            assert tc.post("/oauth2/token", content=form, headers=headers).status_code == 200
    finally:
        state.release.set()
