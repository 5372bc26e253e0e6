"""OpenAPI: the bearer scheme, an OAuth2 client-credentials flow with ``token_url=``, and the
schema routes public only when the app says so."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get
from litestar.openapi import OpenAPIConfig
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.litestar import (
    OptionalPrincipalDep,
    S2SAuthPlugin,
    requires_any_scope,
    requires_roles,
    requires_scopes,
)
from s2s.verify import VerifierConfig
from tests.litestar.conftest import AUDIENCE, ISSUER, JwksServer, Mint

TOKEN_URL = "https://issuer.example/oauth2/token"


def _app(jwks: JwksServer, clock: FakeClock, **options: Any) -> Litestar:
    @get("/orders", requires=requires_scopes("orders:read"))
    async def orders() -> str:
        return "ok"

    @get("/orders/admin", guards=[requires_scopes("orders:read", "orders:admin"), requires_roles("ops")])
    async def admin() -> str:
        return "ok"

    @get("/reports", requires=[requires_scopes("reports:read"), requires_any_scope("eu", "us")])
    async def reports() -> str:
        return "ok"

    @get("/feed", optional_auth=True)
    async def feed(principal: OptionalPrincipalDep) -> str:
        return "ok"

    @get("/health", exclude_from_auth=True)
    async def health() -> str:
        return "ok"

    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=jwks.client(), clock=clock, **options
    )
    return Litestar(
        [orders, admin, reports, feed, health],
        plugins=[plugin],
        openapi_config=OpenAPIConfig(title="t", version="1"),
        logging_config=None,
    )


def test_client_credentials_flow_with_the_scopes_routes_need(jwks: JwksServer, clock: FakeClock) -> None:
    app = _app(jwks, clock, token_url=TOKEN_URL, scopes={"orders:read": "Read orders"})
    schema = app.openapi_schema.to_schema()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["BearerToken"]["scheme"] == "bearer"
    flow = schemes["OAuth2"]["flows"]["clientCredentials"]
    assert schemes["OAuth2"]["type"] == "oauth2"
    assert flow["tokenUrl"] == TOKEN_URL
    assert flow["scopes"] == {
        "orders:read": "Read orders",
        "orders:admin": "orders:admin",
        "reports:read": "reports:read",
        "eu": "eu",
        "us": "us",
    }
    paths = schema["paths"]
    assert paths["/orders"]["get"]["security"] == [{"BearerToken": []}, {"OAuth2": ["orders:read"]}]
    assert paths["/orders/admin"]["get"]["security"] == [
        {"BearerToken": []},
        {"OAuth2": ["orders:read", "orders:admin"]},
    ]
    # Any of two scopes: two alternatives, each with the scopes always needed.
    assert paths["/reports"]["get"]["security"] == [
        {"BearerToken": []},
        {"OAuth2": ["reports:read", "eu"]},
        {"OAuth2": ["reports:read", "us"]},
    ]
    # Optional authentication: anonymous ({}) is one of the alternatives.
    assert paths["/feed"]["get"]["security"] == [{}, {"BearerToken": []}, {"OAuth2": []}]
    assert "security" not in paths["/health"]["get"]


def test_without_token_url_only_the_bearer_scheme(jwks: JwksServer, clock: FakeClock) -> None:
    schema = _app(jwks, clock).openapi_schema.to_schema()
    assert set(schema["components"]["securitySchemes"]) == {"BearerToken"}
    assert schema["paths"]["/orders"]["get"]["security"] == [{"BearerToken": []}]


def test_schema_needs_a_token_unless_the_app_says_so(jwks: JwksServer, clock: FakeClock, mint: Mint) -> None:
    with TestClient(_app(jwks, clock)) as client:
        assert client.get("/schema/openapi.json").status_code == 401
        assert client.get("/schema/swagger").status_code == 401
        ok = client.get("/schema/openapi.json", headers={"Authorization": f"Bearer {mint()}"})
        assert ok.status_code == 200
    with TestClient(_app(jwks, clock, public_schema=True)) as client:
        assert client.get("/schema/openapi.json").status_code == 200
        assert client.get("/schema/swagger").status_code == 200
        assert client.get("/schema/../orders").status_code in (401, 404)
        assert client.get("/orders").status_code == 401
