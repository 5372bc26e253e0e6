"""The plugin's wiring: DI and request.user, exclusions, OpenAPI, lifespan, WebSockets, guards."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from litestar import Litestar, asgi, get
from litestar.exceptions import WebSocketDisconnect
from litestar.handlers import ASGIRouteHandler
from litestar.testing import TestClient
from litestar.types import Receive, Scope, Send

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.keys import SigningKey
from s2s.litestar import (
    WS_FORBIDDEN,
    WS_INVALID_REQUEST,
    WS_UNAUTHENTICATED,
    S2SAuthPlugin,
    requires_features,
    requires_permissions,
    requires_roles,
    requires_scopes,
)
from s2s.litestar._paths import routed_path
from s2s.verify import TokenVerifier, VerifierConfig
from tests.litestar.conftest import AUDIENCE, ISSUER, JWKS_URL, REALM, Harness, JwksServer, Mint, build_app

# -- dependency injection and request.user --------------------------------------------------------


def test_principal_is_injected_and_is_request_user(
    client: TestClient[Litestar], harness: Harness, mint: Mint
) -> None:
    response = client.get("/whoami", headers={"Authorization": f"Bearer {mint(scope='a b orders:read')}"})
    assert response.status_code == 200
    assert response.json() == {
        "same": True,
        "subject": "billing-service",
        "client_id": "billing-service",
        "scopes": ["a", "b", "orders:read"],
        "auth_sub": "billing-service",
    }


def test_principal_on_an_excluded_route_fails_closed(client: TestClient[Litestar], harness: Harness) -> None:
    response = client.get("/public/principal")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'
    assert response.headers["cache-control"] == "no-store"
    assert harness.calls["public-principal"] == 0


def test_guard_on_an_excluded_route_fails_closed(client: TestClient[Litestar], harness: Harness) -> None:
    response = client.get("/public/guarded")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'
    assert harness.calls["public-guarded"] == 0


# -- exclusions -----------------------------------------------------------------------------------


def test_excluded_path_needs_no_token(client: TestClient[Litestar], harness: Harness) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert harness.calls["health"] == 1


def test_exclusion_is_anchored(client: TestClient[Litestar], harness: Harness, mint: Mint) -> None:
    response = client.get("/healthz-evil")
    assert response.status_code == 401
    assert harness.calls["healthz-evil"] == 0
    assert client.get("/healthz-evil", headers={"Authorization": f"Bearer {mint()}"}).status_code == 200


def test_unanchored_pattern_still_matches_whole_path_only(jwks: JwksServer, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), exclude="/health", http_client=jwks.client(), clock=clock
    )
    with TestClient(build_app(plugin, calls)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/healthz-evil").status_code == 401
    assert calls == Counter({"health": 1})


def _mounted_admin_app(calls: Counter[str]) -> ASGIRouteHandler:
    @asgi("/admin", is_mount=True, copy_scope=True)
    async def admin(scope: Scope, receive: Receive, send: Send) -> None:
        calls["admin"] += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"admin data"})

    return admin


def test_exclusion_matches_the_full_path_of_a_mounted_app(
    jwks: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    # Litestar hands a mounted app the path below its mount point ("/admin/public/x" arrives as
    # "/public/x/"): an exclusion meant for "/public/..." must not open the mounted admin app.
    calls: Counter[str] = Counter()
    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        exclude=r"/public/.*",
        http_client=jwks.client(),
        clock=clock,
    )
    app = Litestar([_mounted_admin_app(calls)], plugins=[plugin], logging_config=None)
    with TestClient(app) as client:
        for path in ("/admin/public/x", "/v1/../admin/public/x", "/admin/public%2Fx"):
            response = client.get(path)
            assert response.status_code == 401, path
            assert "admin data" not in response.text
        assert calls["admin"] == 0
        ok = client.get("/admin/public/x", headers={"Authorization": f"Bearer {mint()}"})
        assert ok.status_code == 200
    assert calls["admin"] == 1


def test_exclusion_of_a_mounted_app_by_its_full_path(jwks: JwksServer, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), exclude=r"/admin/.*", http_client=jwks.client(), clock=clock
    )
    app = Litestar([_mounted_admin_app(calls)], plugins=[plugin], logging_config=None)
    with TestClient(app) as client:
        assert client.get("/admin/anything").status_code == 200
    assert calls["admin"] == 1


def test_routed_path_of_a_mount_without_raw_path_is_unknown() -> None:
    scope: Any = {"type": "http", "path": "/public/x/", "root_path": ""}
    assert routed_path(scope, mounted=True) is None  # unknown: no exclusion applies (fail closed)
    scope["raw_path"] = b"/api/admin/public%2Fx?q=1"
    scope["root_path"] = "/api"
    assert routed_path(scope, mounted=True) == "/admin/public/x"
    assert routed_path(scope, mounted=False) == "/public/x/"


def test_per_route_opt_out(client: TestClient[Litestar], harness: Harness) -> None:
    assert client.get("/public").json() == {"status": "public"}
    assert harness.calls["public"] == 1


def test_invalid_exclude_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        S2SAuthPlugin(VerifierConfig.for_s2s(ISSUER, AUDIENCE), exclude=["(unclosed"])


def test_unknown_config_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        S2SAuthPlugin("https://issuer.test")  # type: ignore[arg-type]


# -- guards ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guard", "claims", "allowed"),
    [
        (requires_scopes("a", "b"), {"scope": "a b c"}, True),
        (requires_scopes("a", "b"), {"scope": "a"}, False),
        (requires_scopes("a"), {"scp": "a", "scope": None}, True),
        (requires_scopes("a"), {"scope": ["a", "z"]}, True),
        (requires_roles("admin"), {"roles": ["admin", "x"]}, True),
        (requires_roles("admin", "ops"), {"roles": ["admin"]}, False),
        (requires_roles("admin"), {"roles": "admin-not"}, False),
        (requires_permissions("read:orders"), {"permissions": ["read:orders"]}, True),
        (requires_permissions("read:orders"), {"permissions": []}, False),
        (requires_features("beta"), {"features": ["beta"]}, True),
        (requires_features("beta"), {}, False),
    ],
)
def test_guards(
    *, jwks: JwksServer, clock: FakeClock, mint: Mint, guard: Any, claims: dict[str, Any], allowed: bool
) -> None:
    calls: Counter[str] = Counter()

    @get("/guarded", guards=[guard])
    async def guarded() -> str:
        calls["guarded"] += 1
        return "ok"

    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), realm=REALM, http_client=jwks.client(), clock=clock
    )
    with TestClient(Litestar([guarded], plugins=[plugin], logging_config=None)) as client:
        response = client.get("/guarded", headers={"Authorization": f"Bearer {mint(**claims)}"})
    if allowed:
        assert response.status_code == 200
        assert calls["guarded"] == 1
    else:
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert response.headers["cache-control"] == "no-store"
        assert calls["guarded"] == 0


@pytest.mark.parametrize("bad", [(), ("",), ("a b",), (" a",)])
def test_guard_arguments_are_checked(bad: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError):
        requires_scopes(*bad)


def test_scope_challenge_lists_every_required_scope(jwks: JwksServer, clock: FakeClock, mint: Mint) -> None:
    @get("/both", guards=[requires_scopes("orders:read", "orders:write")])
    async def both() -> str:
        return "ok"

    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), realm=REALM, http_client=jwks.client(), clock=clock
    )
    with TestClient(Litestar([both], plugins=[plugin], logging_config=None)) as client:
        response = client.get("/both", headers={"Authorization": f"Bearer {mint(scope='orders:read')}"})
    assert response.status_code == 403
    assert 'scope="orders:read orders:write"' in response.headers["www-authenticate"]
    assert "orders:write" in response.json()["error_description"]


# -- OpenAPI --------------------------------------------------------------------------------------


def test_openapi_documents_the_bearer_scheme_on_protected_routes(harness: Harness) -> None:
    schema = harness.app.openapi_schema.to_schema()
    assert schema["components"]["securitySchemes"]["BearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token (RFC 9068 JWT) in the Authorization header.",
    }
    paths = schema["paths"]
    assert paths["/orders"]["get"]["security"] == [{"BearerToken": []}]
    assert paths["/orders/{order_id}"]["delete"]["security"] == [{"BearerToken": []}]
    assert paths["/healthz-evil"]["get"]["security"] == [{"BearerToken": []}]
    assert "security" not in paths["/health"]["get"]
    assert "security" not in paths["/public"]["get"]


# -- lifespan -------------------------------------------------------------------------------------


def test_lifespan_prefetches_jwks_and_leaves_a_user_client_open(
    harness: Harness, jwks: JwksServer, mint: Mint
) -> None:
    assert jwks.requests[JWKS_URL] == 0
    with TestClient(harness.app) as client:
        assert jwks.requests[JWKS_URL] == 1, "JWKS not prefetched at startup"
        assert client.get("/orders", headers={"Authorization": f"Bearer {mint()}"}).status_code == 200
        assert jwks.requests[JWKS_URL] == 1, "the first request fetched the JWKS again"
    assert not harness.http_client.is_closed


def test_lifespan_starts_and_closes_an_owned_verifier(
    monkeypatch: pytest.MonkeyPatch, jwks: JwksServer, clock: FakeClock
) -> None:
    events: list[str] = []
    original_start, original_aclose = TokenVerifier.start, TokenVerifier.aclose

    async def start(self: TokenVerifier) -> None:
        events.append("start")
        await original_start(self)

    async def aclose(self: TokenVerifier) -> None:
        events.append("aclose")
        await original_aclose(self)

    monkeypatch.setattr(TokenVerifier, "start", start)
    monkeypatch.setattr(TokenVerifier, "aclose", aclose)
    plugin = S2SAuthPlugin(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=jwks.client(), clock=clock)
    with TestClient(build_app(plugin, Counter())):
        assert events == ["start"]
    assert events == ["start", "aclose"]


def test_a_user_verifier_is_neither_started_nor_closed_by_the_plugin(
    monkeypatch: pytest.MonkeyPatch, jwks: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    events: list[str] = []
    monkeypatch.setattr(TokenVerifier, "aclose", lambda self: events.append("aclose"))
    http_client = jwks.client()
    verifier = TokenVerifier(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=http_client, clock=clock)
    plugin = S2SAuthPlugin(verifier)
    assert plugin.verifier is verifier
    with TestClient(build_app(plugin, Counter())) as client:
        assert jwks.requests[JWKS_URL] == 0, "the plugin prefetched through a verifier it does not own"
        assert client.get("/orders", headers={"Authorization": f"Bearer {mint()}"}).status_code == 200
    assert events == []
    assert not http_client.is_closed


def test_a_user_verifier_rejects_plugin_http_options(jwks: JwksServer) -> None:
    verifier = TokenVerifier(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=jwks.client())
    with pytest.raises(ConfigError):
        S2SAuthPlugin(verifier, http_client=httpx.AsyncClient())


def test_startup_survives_an_unreachable_jwks(clock: FakeClock, mint: Mint) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    http_client = httpx.AsyncClient(transport=httpx.MockTransport(down))
    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        exclude="/health",
        realm=REALM,
        http_client=http_client,
        clock=clock,
    )
    calls: Counter[str] = Counter()
    with TestClient(build_app(plugin, calls)) as client:
        assert client.get("/health").status_code == 200
        response = client.get("/orders", headers={"Authorization": f"Bearer {mint()}"})
        # No keys at all because the IdP is down: our fault, not the caller's (RFC 6750 401 would
        # make a well-behaved client throw its good token away).
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        assert response.headers["cache-control"] == "no-store"
        assert "invalid_token" not in response.headers.get("www-authenticate", "")
    assert calls == Counter({"health": 1})


# -- WebSockets -----------------------------------------------------------------------------------


def test_websocket_with_a_valid_token(client: TestClient[Litestar], harness: Harness, mint: Mint) -> None:
    with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {mint()}"}) as ws:
        assert ws.receive_json() == {"subject": "billing-service", "user": "billing-service"}
    assert harness.calls["ws"] == 1


def _close_code(client: TestClient[Litestar], **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws", **kwargs) as ws:
        ws.receive_json()
    return info.value.code, str(info.value.detail)


def test_websocket_without_a_token_closes_4401(client: TestClient[Litestar], harness: Harness) -> None:
    code, _ = _close_code(client)
    assert code == WS_UNAUTHENTICATED == 4401
    assert harness.calls["ws"] == 0


def test_websocket_with_a_bad_token_closes_4401(
    client: TestClient[Litestar], harness: Harness, mint: Mint
) -> None:
    token = mint(aud="someone-else")
    code, reason = _close_code(client, headers={"Authorization": f"Bearer {token}"})
    assert code == 4401
    assert token.split(".")[2] not in reason
    assert harness.calls["ws"] == 0


def test_websocket_without_the_scope_closes_4403(
    client: TestClient[Litestar], harness: Harness, mint: Mint
) -> None:
    code, _ = _close_code(client, headers={"Authorization": f"Bearer {mint(scope='other')}"})
    assert code == WS_FORBIDDEN == 4403
    assert harness.calls["ws"] == 0


def test_websocket_token_in_query_closes_4400(
    client: TestClient[Litestar], harness: Harness, mint: Mint
) -> None:
    code, _ = _close_code(client, params={"access_token": mint()})
    assert code == WS_INVALID_REQUEST == 4400
    assert harness.calls["ws"] == 0


# -- several issuers ------------------------------------------------------------------------------


def test_several_issuers_each_bound_to_its_own_keys(
    key: SigningKey, other_key: SigningKey, mint: Mint, clock: FakeClock
) -> None:
    second = "https://second.test"

    def serve(request: httpx.Request) -> httpx.Response:
        owner = key if request.url.host == "issuer.test" else other_key
        return httpx.Response(200, json={"keys": [owner.public_jwk_entry()]})

    configs = [VerifierConfig.for_s2s(ISSUER, AUDIENCE), VerifierConfig.for_s2s(second, AUDIENCE)]
    client_ = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    plugin = S2SAuthPlugin(configs, realm=REALM, http_client=client_, clock=clock)
    calls: Counter[str] = Counter()
    with TestClient(build_app(plugin, calls)) as client:
        for token, status in [
            (mint(), 200),
            (mint(signing_key=other_key, iss=second), 200),
            # Each issuer's token signed with the other issuer's key.
            (mint(signing_key=other_key), 401),
            (mint(iss=second), 401),
        ]:
            assert client.get("/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == status
    assert calls["whoami"] == 2
