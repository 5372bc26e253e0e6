"""Fast paths answer exactly as the slow ones, using only Litestar's public API.

A requirement is checked by the plugin's middleware when it sits in the route's ``opt``
(``requires=...``) and by Litestar when it is a guard (``guards=[...]``, which Litestar runs with a
copy of the route handler per guard). Each case runs on both placements, with and without another
middleware in between, and the answers must match. The repeated-header parse is checked too.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import pytest
from litestar import Litestar, get
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.testing import TestClient
from litestar.types import ASGIApp, Receive, Scope, Send

import s2s.litestar
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.litestar import S2SAuthPlugin, requires_roles, requires_scopes
from s2s.observe import Observer
from s2s.verify import InvalidToken, Principal, TokenVerifier, VerifierConfig
from tests.litestar.conftest import AUDIENCE, ISSUER, REALM, JwksServer, Mint


class _PassThrough(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        await next_app(scope, receive, send)


async def _other_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    return None


def _app(plugin: S2SAuthPlugin, calls: Counter[str], *, placement: str, extra_middleware: bool) -> Litestar:
    def needs(*requirements: Any, guards: tuple[Any, ...] = ()) -> dict[str, Any]:
        if placement == "opt":
            return {"requires": list(requirements), "guards": list(guards)}
        return {"guards": [*guards, *requirements]}

    @get("/orders", **needs(requires_scopes("orders:read"), requires_roles("clerk")))
    async def orders() -> str:
        calls["orders"] += 1
        return "ok"

    @get("/items/{item_id:int}", **needs(requires_scopes("items:read")))
    async def item(item_id: int) -> str:
        calls["item"] += 1
        return "ok"

    @get("/opted-out", exclude_from_auth=True, **needs(requires_scopes("orders:read")))
    async def opted_out() -> str:
        calls["opted-out"] += 1
        return "ok"

    @get("/mixed", **needs(requires_scopes("orders:read"), guards=(_other_guard,)))
    async def mixed() -> str:
        calls["mixed"] += 1
        return "ok"

    return Litestar(
        [orders, item, opted_out, mixed],
        plugins=[plugin],
        middleware=[_PassThrough()] if extra_middleware else [],
        logging_config=None,
    )


@pytest.fixture(
    params=[("opt", False), ("opt", True), ("guards", False), ("guards", True)],
    ids=["requires-opt", "requires-opt+middleware", "guards", "guards+middleware"],
)
def setup(
    request: pytest.FixtureRequest, jwks: JwksServer, clock: FakeClock
) -> tuple[Litestar, Counter[str]]:
    calls: Counter[str] = Counter()
    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        # Matches one concrete path of a parameterised route: the route's template does not match.
        exclude=["/items/7"],
        realm=REALM,
        http_client=jwks.client(),
        clock=clock,
    )
    placement, extra = request.param
    return _app(plugin, calls, placement=placement, extra_middleware=extra), calls


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
def test_requirement_answers(
    *,
    setup: tuple[Litestar, Counter[str]],
    mint: Mint,
    path: str,
    claims: dict[str, Any],
    status: int,
    challenge: str | None,
) -> None:
    app, calls = setup
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
def test_requirement_on_an_excluded_request_fails_closed(
    setup: tuple[Litestar, Counter[str]], path: str
) -> None:
    app, calls = setup
    with TestClient(app) as client:
        response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'
    assert response.headers["cache-control"] == "no-store"
    assert sum(calls.values()) == 0


def test_excluded_request_with_a_token_still_checks_the_requirement(
    setup: tuple[Litestar, Counter[str]], mint: Mint
) -> None:
    # On an excluded path the middleware verifies nothing, so there is no principal to check.
    app, calls = setup
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
    setup: tuple[Litestar, Counter[str]], mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    app, calls = setup
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


def test_a_handler_keeps_its_guards(setup: tuple[Litestar, Counter[str]]) -> None:
    # The plugin changes no handler's guards (it used to empty Litestar's private resolved list).
    app, _ = setup
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            assert handler.resolve_guards() == [*(handler.guards or ())]


def test_the_plugin_uses_only_litestars_public_api() -> None:
    package = Path(s2s.litestar.__file__).parent
    ours = sorted(p.name for p in package.glob("*.py"))
    assert "_plugin.py" in ours and "_middleware.py" in ours
    private = re.compile(
        r"(?<!s2s\.)litestar\._|_resolved_\w+|ownership_layers|ASGIMiddleware|\._[a-z]\w*\s*=\s*\[\]"
    )
    for name in ours:
        text = (package / name).read_text()
        assert not private.findall(text), f"{name} uses {private.findall(text)}"


def test_a_requirement_option_must_hold_requirements(jwks: JwksServer, clock: FakeClock) -> None:
    @get("/x", requires="orders:read")
    async def x() -> str:
        return "ok"

    plugin = S2SAuthPlugin(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=jwks.client(), clock=clock)
    with pytest.raises(ConfigError, match="requires"):
        Litestar([x], plugins=[plugin], logging_config=None)


def _statuses(verifier: Any, token: str, n: int) -> list[int]:
    @get("/who")
    async def who() -> str:
        found = s2s.litestar.current_principal()
        return found.subject if found is not None else "-"

    app = Litestar([who], plugins=[S2SAuthPlugin(verifier)], logging_config=None)
    with TestClient(app, raise_server_exceptions=False) as client:
        return [
            client.get("/who", headers={"Authorization": f"Bearer {token}"}).status_code for _ in range(n)
        ]


def test_a_reused_token_is_answered_by_verify_cached_without_awaiting_verify(
    jwks: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    calls: Counter[str] = Counter()

    class Events(Observer):
        def verified(self, issuer: str, refusal: str | None, cached: bool) -> None:
            calls["cached" if cached else "verified"] += 1

    class Counting(TokenVerifier):
        def verify_cached(self, token: str) -> Principal | None:
            hit = super().verify_cached(token)
            calls["hit" if hit is not None else "miss"] += 1
            return hit

    config = VerifierConfig.for_s2s(ISSUER, AUDIENCE)
    counting = Counting(config, http_client=jwks.client(), clock=clock, observer=Events())
    assert _statuses(counting, mint(), 5) == [200] * 5
    # Verified in full on first sight and when it came back (then cached); then three hits, each
    # counted once: verify() was not awaited for them (it would have counted them again).
    assert calls == {"miss": 2, "verified": 2, "hit": 3, "cached": 3}


def test_a_verify_replaced_on_the_instance_sees_every_request(
    jwks: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    verifier = TokenVerifier(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=jwks.client(), clock=clock)
    real = verifier.verify
    seen: list[str] = []

    async def verify(token: str) -> Principal:
        seen.append(token)
        return await real(token)

    verifier.verify = verify  # type: ignore[method-assign]
    token = mint()
    assert _statuses(verifier, token, 4) == [200] * 4
    assert seen == [token] * 4


def test_a_subclass_adding_a_rule_in_verify_sees_every_request(
    jwks: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    class Denylist(TokenVerifier):
        async def verify(self, token: str) -> Principal:
            principal = await super().verify(token)
            if principal.subject == "blocked":
                raise InvalidToken("subject blocked")
            return principal

    denylist = Denylist(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=jwks.client(), clock=clock)
    # The token is valid and cached by the base class from its second use: the rule still holds.
    assert _statuses(denylist, mint(sub="blocked"), 4) == [401] * 4


@pytest.mark.parametrize("shape", ["mock", "async-cached", "raising-cached", "attribute"])
def test_a_verifier_that_is_not_a_token_verifier_is_only_asked_verify(shape: str) -> None:
    # Whatever else it has (names like verify_cached included), only verify() decides.
    def refuse(*_: Any) -> Any:
        raise RuntimeError("not to be called")

    class Base:
        async def verify(self, token: str) -> Principal:
            raise InvalidToken("refused")

    verifier: Any
    if shape == "mock":
        verifier = MagicMock(verify=AsyncMock(side_effect=InvalidToken("refused")))
    elif shape == "async-cached":

        class AsyncCached(Base):
            async def verify_cached(self, token: str) -> None:
                return None

        verifier = AsyncCached()
    elif shape == "raising-cached":
        verifier = type("RaisingCached", (Base,), {"verify_cached": refuse, "cached": refuse})()
    else:
        verifier = type("Attribute", (Base,), {"verify_cached": True, "cached": True})()
    assert _statuses(verifier, "a.b.c", 2) == [401, 401]
