"""Per-route options: optional authentication, any-of requirements, CORS preflight pass-through."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from litestar import Litestar, get, websocket
from litestar.connection import WebSocket
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.litestar import (
    WS_FORBIDDEN,
    OptionalPrincipalDep,
    PrincipalDep,
    S2SAuthPlugin,
    requires_any_role,
    requires_any_scope,
    requires_scopes,
)
from s2s.verify import VerifierConfig
from tests.litestar.conftest import AUDIENCE, ISSUER, REALM, JwksServer, Mint, close_code


def _plugin(jwks: JwksServer, clock: FakeClock, **options: Any) -> S2SAuthPlugin:
    return S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        realm=REALM,
        http_client=jwks.client(),
        clock=clock,
        **options,
    )


# -- optional authentication -----------------------------------------------------------------------


@pytest.fixture
def optional_app(jwks: JwksServer, clock: FakeClock) -> tuple[Litestar, Counter[str]]:
    calls: Counter[str] = Counter()

    @get("/feed", optional_auth=True)
    async def feed(principal: OptionalPrincipalDep) -> dict[str, Any]:
        calls["feed"] += 1
        return {"caller": None if principal is None else principal.subject}

    @get("/feed/scoped", optional_auth=True, requires=requires_scopes("feed:read"))
    async def scoped(principal: OptionalPrincipalDep) -> str:
        calls["scoped"] += 1
        return "ok"

    @get("/strict")
    async def strict(principal: PrincipalDep) -> str:
        calls["strict"] += 1
        return "ok"

    return Litestar([feed, scoped, strict], plugins=[_plugin(jwks, clock)], logging_config=None), calls


def test_optional_route_without_a_token_gets_no_principal(
    optional_app: tuple[Litestar, Counter[str]],
) -> None:
    app, calls = optional_app
    with TestClient(app) as client:
        assert client.get("/feed").json() == {"caller": None}
        assert client.get("/feed?page=2").json() == {"caller": None}
        assert client.get("/strict").status_code == 401
    assert calls == Counter({"feed": 2})


def test_optional_route_with_a_token_gets_the_principal(
    optional_app: tuple[Litestar, Counter[str]], mint: Mint
) -> None:
    app, _ = optional_app
    with TestClient(app) as client:
        response = client.get("/feed", headers={"Authorization": f"Bearer {mint()}"})
    assert response.json() == {"caller": "billing-service"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": "Bearer not.a.token"}, 401),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401),
        ({"Authorization": "Bearer"}, 400),
        ([("Authorization", "Bearer a.b.c"), ("Authorization", "Bearer a.b.c")], 400),
    ],
)
def test_optional_route_still_refuses_bad_credentials(
    optional_app: tuple[Litestar, Counter[str]], headers: Any, status: int
) -> None:
    app, calls = optional_app
    with TestClient(app) as client:
        response = client.get("/feed", headers=headers)
    assert response.status_code == status
    assert response.headers["www-authenticate"].startswith(f'Bearer realm="{REALM}"')
    assert calls["feed"] == 0


def test_optional_route_refuses_a_token_in_the_query_string(
    optional_app: tuple[Litestar, Counter[str]], mint: Mint
) -> None:
    app, calls = optional_app
    with TestClient(app) as client:
        response = client.get(f"/feed?access_token={mint()}")
    assert response.status_code == 400
    assert calls["feed"] == 0


def test_optional_route_with_requirements_fails_closed(
    optional_app: tuple[Litestar, Counter[str]], mint: Mint
) -> None:
    app, calls = optional_app
    with TestClient(app) as client:
        assert client.get("/feed/scoped").status_code == 401
        ok = client.get("/feed/scoped", headers={"Authorization": f"Bearer {mint(scope='feed:read')}"})
        assert ok.status_code == 200
    assert calls["scoped"] == 1


def test_optional_route_must_accept_a_missing_principal(jwks: JwksServer, clock: FakeClock) -> None:
    @get("/feed", optional_auth=True)
    async def feed(principal: PrincipalDep) -> str:
        return "ok"

    with pytest.raises(ConfigError, match="OptionalPrincipalDep"):
        Litestar([feed], plugins=[_plugin(jwks, clock)], logging_config=None)


# -- any-of requirements ---------------------------------------------------------------------------


@pytest.mark.parametrize("placement", ["requires", "guards"])
@pytest.mark.parametrize(
    ("requirement", "claims", "allowed"),
    [
        (requires_any_scope("orders:read", "orders:admin"), {"scope": "orders:admin"}, True),
        (requires_any_scope("orders:read", "orders:admin"), {"scope": "orders:read x"}, True),
        (requires_any_scope("orders:read", "orders:admin"), {"scope": "orders:write"}, False),
        (requires_any_role("admin", "ops"), {"roles": ["ops"]}, True),
        (requires_any_role("admin", "ops"), {"roles": ["clerk"]}, False),
        (requires_any_role("admin", "ops"), {}, False),
    ],
)
def test_any_of_requirements(
    *,
    jwks: JwksServer,
    clock: FakeClock,
    mint: Mint,
    placement: str,
    requirement: Any,
    claims: Any,
    allowed: bool,
) -> None:
    calls: Counter[str] = Counter()
    option = {placement: [requirement]}

    @get("/x", **option)
    async def x() -> str:
        calls["x"] += 1
        return "ok"

    with TestClient(Litestar([x], plugins=[_plugin(jwks, clock)], logging_config=None)) as client:
        response = client.get("/x", headers={"Authorization": f"Bearer {mint(**claims)}"})
    assert response.status_code == (200 if allowed else 403)
    assert calls["x"] == (1 if allowed else 0)
    if not allowed:
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert " ".join(requirement.values) in response.json()["error_description"]
        if requirement.attribute == "scopes":
            assert 'scope="orders:read orders:admin"' in response.headers["www-authenticate"]


def test_any_of_requirement_on_a_websocket(jwks: JwksServer, clock: FakeClock, mint: Mint) -> None:
    @websocket("/ws", requires=requires_any_role("admin", "ops"))
    async def ws(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_text("hello")
        await socket.close()

    app = Litestar([ws], plugins=[_plugin(jwks, clock)], logging_config=None)
    with TestClient(app) as client:
        with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {mint(roles=['ops'])}"}) as s:
            assert s.receive_text() == "hello"
        code, _ = close_code(client, headers={"Authorization": f"Bearer {mint()}"})
    assert code == WS_FORBIDDEN


# -- CORS preflight ------------------------------------------------------------------------------------


def _preflight_app(plugin: S2SAuthPlugin, calls: Counter[str]) -> Litestar:
    @get("/orders", requires=requires_scopes("orders:read"))
    async def orders() -> str:
        calls["orders"] += 1
        return "ok"

    return Litestar([orders], plugins=[plugin], logging_config=None)


PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}


def test_preflight_is_authenticated_by_default(jwks: JwksServer, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    with TestClient(_preflight_app(_plugin(jwks, clock), calls)) as client:
        assert client.options("/orders", headers=PREFLIGHT).status_code == 401


def test_preflight_passes_when_enabled(jwks: JwksServer, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    with TestClient(_preflight_app(_plugin(jwks, clock, cors_preflight=True), calls)) as client:
        preflight = client.options("/orders", headers=PREFLIGHT)
        assert preflight.status_code == 204
        assert "GET" in preflight.headers["allow"]
        # Only real preflights: both headers, and only OPTIONS.
        assert client.options("/orders", headers={"Origin": "https://app.example"}).status_code == 401
        method_only = {"Access-Control-Request-Method": "GET"}
        assert client.options("/orders", headers=method_only).status_code == 401
        assert client.get("/orders", headers=PREFLIGHT).status_code == 401
    assert calls["orders"] == 0
