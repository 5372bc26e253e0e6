"""``current_principal()``: the injected principal without Litestar's dependency injection."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.litestar import PrincipalDep, S2SAuthPlugin, current_principal, requires_scopes
from s2s.verify import MissingToken, VerifierConfig
from tests.litestar.conftest import AUDIENCE, ISSUER, JwksServer, Mint


def _caller() -> dict[str, Any]:
    principal = current_principal()
    return {"client": None if principal is None else principal.client_id}


@pytest.fixture
def app(jwks: JwksServer, clock: FakeClock) -> Litestar:
    @get("/async", requires=requires_scopes("orders:read"))
    async def in_async() -> dict[str, Any]:
        return _caller()

    @get("/thread", sync_to_thread=True)
    def in_thread() -> dict[str, Any]:
        return _caller()  # Litestar's worker thread sees the request's context

    @get("/sync", sync_to_thread=False)
    def in_sync() -> dict[str, Any]:
        return _caller()

    @get("/same")
    async def same(principal: PrincipalDep) -> dict[str, Any]:
        return {"same": current_principal() is principal}

    @get("/optional", optional_auth=True)
    async def optional() -> dict[str, Any]:
        return _caller()

    @get("/public", exclude_from_auth=True)
    async def public() -> dict[str, Any]:
        return _caller()

    @websocket("/ws")
    async def ws(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_json(_caller())
        await socket.close()

    @websocket("/ws-public", exclude_from_auth=True)
    async def ws_public(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_json(_caller())

    plugin = S2SAuthPlugin(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=jwks.client(), clock=clock)
    routes = [in_async, in_thread, in_sync, same, optional, public, ws, ws_public]
    return Litestar(routes, plugins=[plugin], logging_config=None)


def test_it_is_the_verified_caller_wherever_the_handler_runs(app: Litestar, mint: Mint) -> None:
    headers = {"Authorization": f"Bearer {mint(client_id='orders-ui')}"}
    with TestClient(app) as client:
        for path in ("/async", "/thread", "/sync", "/optional"):
            response = client.get(path, headers=headers)
            assert (path, response.status_code, response.json()) == (path, 200, {"client": "orders-ui"})
        assert client.get("/same", headers=headers).json() == {"same": True}
        with client.websocket_connect("/ws", headers=headers) as socket:
            assert socket.receive_json() == {"client": "orders-ui"}
        # The requirement still applies before the handler runs.
        other = {"Authorization": f"Bearer {mint(scope='orders:write')}"}
        assert client.get("/async", headers=other).status_code == 403


def test_none_on_an_optional_route_without_credentials(app: Litestar) -> None:
    with TestClient(app) as client:
        response = client.get("/optional")
        assert (response.status_code, response.json()) == (200, {"client": None})


def test_refused_where_nothing_was_verified(app: Litestar) -> None:
    with TestClient(app) as client:
        response = client.get("/public")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("/ws-public") as socket,
        ):
            socket.receive_json()
        assert closed.value.code == 4401


def test_refused_outside_any_request() -> None:
    with pytest.raises(MissingToken):
        current_principal()
