"""When no usable keys exist (the IdP is down), the fault is ours: 503 + Retry-After, never 401.

The verifier raises ``KeysUnavailable`` (a ``VerificationError`` with ``status_code = 503`` and a
``retry_after``); a 401 ``invalid_token`` would make a well-behaved client throw its good token
away. A local subclass stands in for it here: the plugin keys on the status, not the class.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from litestar import Litestar, get, websocket
from litestar.connection import WebSocket
from litestar.testing import TestClient

from s2s.litestar import WS_TRY_AGAIN_LATER, PrincipalDep, S2SAuthPlugin, requires_scopes
from s2s.verify import Principal
from s2s.verify.errors import VerificationError
from tests.litestar.conftest import REALM, close_code

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


class KeysUnavailable(VerificationError):
    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class DownVerifier:
    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after
        self.calls = 0

    async def verify(self, token: str) -> Principal:
        self.calls += 1
        raise KeysUnavailable("no usable signing keys: the JWKS host fails", retry_after=self.retry_after)


def _app(verifier: DownVerifier, calls: Counter[str]) -> Litestar:
    @get("/orders", requires=requires_scopes("orders:read"))
    async def orders(principal: PrincipalDep) -> str:
        calls["orders"] += 1
        return "ok"

    @websocket("/ws")
    async def ws(socket: WebSocket[Any, Any, Any]) -> None:
        calls["ws"] += 1
        await socket.accept()
        await socket.close()

    return Litestar([orders, ws], plugins=[S2SAuthPlugin(verifier, realm=REALM)], logging_config=None)


@pytest.mark.parametrize(
    ("retry_after", "header"), [(None, "5"), (12.2, "13"), (0, "5"), (float("nan"), "5")]
)
def test_http_answer_is_503_with_retry_after(retry_after: float | None, header: str) -> None:
    calls: Counter[str] = Counter()
    verifier = DownVerifier(retry_after)
    with TestClient(_app(verifier, calls)) as client:
        response = client.get("/orders", headers={"Authorization": f"Bearer {TOKEN}"})
    assert verifier.calls == 1
    assert response.status_code == 503
    assert response.headers["retry-after"] == header
    assert response.headers["cache-control"] == "no-store"
    # Not the caller's fault: no challenge telling it to drop its token.
    assert "www-authenticate" not in response.headers
    assert "invalid_token" not in response.text
    assert response.json() == {
        "status_code": 503,
        "error": "temporarily_unavailable",
        "error_description": "no usable signing keys: the JWKS host fails",
    }
    assert TOKEN not in response.text
    assert calls["orders"] == 0


def test_a_missing_token_is_still_401_while_keys_are_unavailable() -> None:
    calls: Counter[str] = Counter()
    with TestClient(_app(DownVerifier(None), calls)) as client:
        response = client.get("/orders")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'


class UpVerifier:
    async def verify(self, token: str) -> Principal:
        return Principal.from_claims({"sub": "billing", "iss": "https://issuer.test", "aud": "x", "exp": 2e9})


def test_the_exception_handler_answers_the_same() -> None:
    # Raised past the middleware (here by a handler), the error reaches the plugin's handler.
    @get("/raises")
    async def raises() -> str:
        raise KeysUnavailable("keys unavailable", retry_after=2.5)

    app = Litestar([raises], plugins=[S2SAuthPlugin(UpVerifier(), realm=REALM)], logging_config=None)
    with TestClient(app) as client:
        response = client.get("/raises", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert response.headers["cache-control"] == "no-store"
    assert "www-authenticate" not in response.headers
    assert response.json()["error"] == "temporarily_unavailable"


def test_websocket_closes_1013() -> None:
    calls: Counter[str] = Counter()
    with TestClient(_app(DownVerifier(3), calls)) as client:
        code, reason = close_code(client, headers={"Authorization": f"Bearer {TOKEN}"})
    assert code == WS_TRY_AGAIN_LATER == 1013
    assert TOKEN not in reason
    assert calls["ws"] == 0
