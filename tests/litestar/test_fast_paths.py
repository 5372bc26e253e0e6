"""Fast paths of the plugin answer exactly as the slow ones: guards run by the middleware (no
per-call handler copy) and the reused parse of a repeated Authorization header.

Each case runs on two apps: one where the plugin takes the guards over (only its middleware on the
route) and one where it must not (another middleware sits in between), and the answers must match.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from litestar import Litestar, get
from litestar._asgi.utils import get_route_handlers
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.testing import TestClient
from litestar.types import ASGIApp, Receive, Scope, Send

from s2s.clock import FakeClock
from s2s.litestar import S2SAuthPlugin, requires_roles, requires_scopes
from s2s.verify import VerifierConfig
from tests.litestar.conftest import AUDIENCE, ISSUER, REALM, JwksServer, Mint


class _PassThrough(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        await next_app(scope, receive, send)


async def _other_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    return None


def _app(plugin: S2SAuthPlugin, calls: Counter[str], *, extra_middleware: bool) -> Litestar:
    @get("/orders", guards=[requires_scopes("orders:read"), requires_roles("clerk")])
    async def orders() -> str:
        calls["orders"] += 1
        return "ok"

    @get("/items/{item_id:int}", guards=[requires_scopes("items:read")])
    async def item(item_id: int) -> str:
        calls["item"] += 1
        return "ok"

    @get("/opted-out", exclude_from_auth=True, guards=[requires_scopes("orders:read")])
    async def opted_out() -> str:
        calls["opted-out"] += 1
        return "ok"

    @get("/mixed", guards=[_other_guard, requires_scopes("orders:read")])
    async def mixed() -> str:
        calls["mixed"] += 1
        return "ok"

    return Litestar(
        [orders, item, opted_out, mixed],
        plugins=[plugin],
        middleware=[_PassThrough()] if extra_middleware else [],
        logging_config=None,
    )


@pytest.fixture(params=[False, True], ids=["taken-over", "litestar-guards"])
def setup(
    request: pytest.FixtureRequest, jwks: JwksServer, clock: FakeClock
) -> tuple[Litestar, Counter[str], bool]:
    calls: Counter[str] = Counter()
    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        # Matches one concrete path of a parameterised route: the route's template does not match.
        exclude=["/items/7"],
        realm=REALM,
        http_client=jwks.client(),
        clock=clock,
    )
    return _app(plugin, calls, extra_middleware=request.param), calls, request.param


def _handler(app: Litestar, name: str) -> BaseRouteHandler:
    (handler,) = [h for route in app.routes for h in get_route_handlers(route) if h.handler_name == name]
    return handler


def test_guards_are_taken_over_only_when_nothing_sits_in_between(
    setup: tuple[Litestar, Counter[str], bool],
) -> None:
    app, _, extra = setup
    for name in ("orders", "item", "opted_out"):
        assert bool(_handler(app, name).resolve_guards()) is extra
    # A guard that is not ours keeps every guard of the handler with Litestar (order preserved).
    assert len(_handler(app, "mixed").resolve_guards()) == 2


@pytest.mark.parametrize(
    ("path", "claims", "status", "challenge"),
    [
        ("/orders", {"scope": "orders:read", "roles": ["clerk"]}, 200, None),
        ("/orders", {"scope": "other", "roles": ["clerk"]}, 403, 'scope="orders:read"'),
        ("/orders", {"scope": "orders:read", "roles": ["x"]}, 403, 'error="insufficient_scope"'),
        ("/mixed", {"scope": "other"}, 403, 'scope="orders:read"'),
        ("/mixed", {"scope": "orders:read"}, 200, None),
    ],
)
def test_guard_answers(
    *,
    setup: tuple[Litestar, Counter[str], bool],
    mint: Mint,
    path: str,
    claims: dict[str, Any],
    status: int,
    challenge: str | None,
) -> None:
    app, calls, _ = setup
    token = mint(**claims)
    with TestClient(app) as client:
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
    assert sum(calls.values()) == (1 if status == 200 else 0)
    if challenge is not None:
        assert challenge in response.headers["www-authenticate"]
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["status_code"] == 403
        assert token not in response.text


@pytest.mark.parametrize("path", ["/opted-out", "/items/7"])
def test_guard_on_an_excluded_request_fails_closed(
    setup: tuple[Litestar, Counter[str], bool], path: str
) -> None:
    app, calls, _ = setup
    with TestClient(app) as client:
        response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'
    assert response.headers["cache-control"] == "no-store"
    assert sum(calls.values()) == 0


def test_excluded_request_with_a_token_still_checks_the_guard(
    setup: tuple[Litestar, Counter[str], bool], mint: Mint
) -> None:
    # On an excluded path the middleware verifies nothing, so there is no principal to check.
    app, calls, _ = setup
    with TestClient(app) as client:
        response = client.get("/items/7", headers={"Authorization": f"Bearer {mint(scope='items:read')}"})
        assert response.status_code == 401
        assert (
            client.get(
                "/items/8", headers={"Authorization": f"Bearer {mint(scope='items:read')}"}
            ).status_code
            == 200
        )
    assert calls["item"] == 1


def test_a_repeated_header_is_judged_like_a_new_one(
    setup: tuple[Litestar, Counter[str], bool], mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    app, calls, _ = setup
    token = mint(scope="orders:read", roles=["clerk"])
    good = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        assert client.get("/orders", headers=good).status_code == 200
        # Same header, now with a token in the query string: still refused.
        response = client.get("/orders?access_token=x", headers=good)
        assert response.status_code == 400
        assert 'error="invalid_request"' in response.headers["www-authenticate"]
        # Same header twice in one request: still refused.
        doubled = client.get("/orders", headers=[("Authorization", f"Bearer {token}")] * 2)
        assert doubled.status_code == 400
        assert client.get("/orders", headers={"Authorization": f"Bearer {token}x!"}).status_code == 401
        assert client.get("/orders", headers=good).status_code == 200
    assert calls["orders"] == 2
    for answer in (response, doubled):
        assert token not in answer.text
        assert token not in str(answer.headers)
    assert token not in caplog.text
