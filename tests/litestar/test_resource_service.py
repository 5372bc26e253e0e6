"""The example resource service (services/resource): routes guarded by scope and role, a public
health check, a WebSocket feed, and the env-configured ``app`` that uvicorn loads."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.verify import VerifierConfig
from services.resource.app import ResourceSettings, create_app
from tests.litestar.conftest import AUDIENCE, ISSUER, JwksServer, Mint
from tests.support import free_port


@pytest.fixture
def service(jwks: JwksServer, clock: FakeClock) -> Iterator[TestClient[Litestar]]:
    app = create_app(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        ResourceSettings(realm="orders"),
        http_client=jwks.client(),
        clock=clock,
    )
    with TestClient(app) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_is_public(service: TestClient[Litestar]) -> None:
    assert service.get("/health").json() == {"status": "ok"}


def test_orders_need_a_token_and_the_read_scope(service: TestClient[Litestar], mint: Mint) -> None:
    assert service.get("/orders").status_code == 401
    refused = service.get("/orders", headers=bearer(mint(scope="orders:write")))
    assert refused.status_code == 403
    assert 'scope="orders:read"' in refused.headers["www-authenticate"]
    listed = service.get("/orders", headers=bearer(mint(scope="orders:read")))
    assert listed.status_code == 200
    assert listed.json()[0]["item"] == "paper"


def test_create_needs_the_write_scope(service: TestClient[Litestar], mint: Mint) -> None:
    order = {"item": "ink", "quantity": 2}
    assert service.post("/orders", json=order, headers=bearer(mint())).status_code == 403
    created = service.post("/orders", json=order, headers=bearer(mint(scope="orders:write")))
    assert created.status_code == 201
    assert created.json()["created_by"] == "billing-service"


def test_delete_needs_the_admin_role(service: TestClient[Litestar], mint: Mint) -> None:
    assert service.delete("/orders/1", headers=bearer(mint(scope="orders:write"))).status_code == 403
    assert service.delete("/orders/1", headers=bearer(mint(roles=["admin"]))).status_code == 204
    assert service.get("/orders/1", headers=bearer(mint())).status_code == 404


def test_whoami(service: TestClient[Litestar], mint: Mint) -> None:
    body = service.get("/whoami", headers=bearer(mint(roles=["admin"]))).json()
    assert body == {
        "subject": "billing-service",
        "client_id": "billing-service",
        "issuer": ISSUER,
        "scopes": ["orders:read"],
        "roles": ["admin"],
    }


def test_docs_are_public_by_default(service: TestClient[Litestar]) -> None:
    schema = service.get("/schema/openapi.json")
    assert schema.status_code == 200
    assert "BearerToken" in schema.json()["components"]["securitySchemes"]
    assert schema.json()["paths"]["/orders"]["get"]["security"] == [{"BearerToken": []}]
    assert service.get("/schema/../orders").status_code in (401, 404)


def test_docs_document_the_client_credentials_flow(jwks: JwksServer, clock: FakeClock) -> None:
    token_url = "https://issuer.example/oauth2/token"
    app = create_app(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        ResourceSettings(token_url=token_url, public_docs=False),
        entra=False,
        http_client=jwks.client(),
        clock=clock,
    )
    with TestClient(app) as client:
        assert client.get("/schema/openapi.json").status_code == 401
    schema = app.openapi_schema.to_schema()
    assert schema["components"]["securitySchemes"]["OAuth2"]["flows"]["clientCredentials"] == {
        "tokenUrl": token_url,
        "scopes": {"orders:read": "orders:read", "orders:write": "orders:write"},
    }
    assert {"OAuth2": ["orders:write"]} in schema["paths"]["/orders"]["post"]["security"]


def test_websocket_feed(service: TestClient[Litestar], mint: Mint) -> None:
    with service.websocket_connect("/orders/feed", headers=bearer(mint())) as ws:
        hello = ws.receive_json()
        assert hello["subject"] == "billing-service"
        ws.send_text("1")
        assert ws.receive_json()["item"] == "paper"
        ws.send_text("99")
        assert ws.receive_json() == {"error": "no such order"}


@pytest.mark.parametrize(("scope", "code"), [(None, 4401), ("orders:write", 4403)])
def test_websocket_feed_refusals(
    service: TestClient[Litestar], mint: Mint, scope: str | None, code: int
) -> None:
    headers = bearer(mint(scope=scope)) if scope else {}
    with (
        pytest.raises(WebSocketDisconnect) as info,
        service.websocket_connect("/orders/feed", headers=headers) as ws,
    ):
        ws.receive_json()
    assert info.value.code == code


def test_settings_from_env() -> None:
    assert ResourceSettings.from_env(environ={}) == ResourceSettings()
    settings = ResourceSettings.from_env(
        environ={
            "S2S_RESOURCE_REALM": "x",
            "S2S_RESOURCE_PUBLIC_DOCS": "no",
            "S2S_RESOURCE_TOKEN_URL": "https://issuer.example/oauth2/token",
            "S2S_RESOURCE_GRAPH_SCOPES": "a/User.Read, a/Mail.Read a/User.Read",
            "S2S_RESOURCE_GRAPH_BASE_URL": "https://graph.example/v1.0/",
        }
    )
    assert settings == ResourceSettings(
        realm="x",
        public_docs=False,
        token_url="https://issuer.example/oauth2/token",
        graph_scopes=("a/User.Read", "a/Mail.Read"),
        graph_base_url="https://graph.example/v1.0",
    )


def test_settings_follow_the_reading_rules_of_every_from_env() -> None:
    # Blank counts as unset (`VAR=` in a compose file), as for every other s2s variable: the
    # hand-written parser used to read a blank PUBLIC_DOCS as false.
    blank = {f"S2S_RESOURCE_{name}": " " for name in ("REALM", "PUBLIC_DOCS", "TOKEN_URL", "GRAPH_SCOPES")}
    assert ResourceSettings.from_env(environ=blank) == ResourceSettings()
    # Booleans in every spelling EnvReader knows.
    assert ResourceSettings.from_env(environ={"S2S_RESOURCE_PUBLIC_DOCS": "OFF"}).public_docs is False


def test_bad_settings_are_one_line_naming_the_variables() -> None:
    with pytest.raises(ConfigError) as info:
        ResourceSettings.from_env(environ={"S2S_RESOURCE_PUBLIC_DOCS": "maybe"})
    assert str(info.value) == "S2S_RESOURCE_PUBLIC_DOCS='maybe' must be true or false"
    with pytest.raises(ConfigError) as info:
        ResourceSettings.from_env(environ={"S2S_RESOURCE_TOKEN_URL": "http://issuer.example/token"})
    assert str(info.value).startswith("S2S_RESOURCE_TOKEN_URL: ") and "\n" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        ResourceSettings.from_env(environ={"S2S_RESOURCE_GRAPH_SCOPES": " , ,"})
    assert str(info.value).startswith("S2S_RESOURCE_GRAPH_SCOPES: ")


def test_settings_resolve_aws_sm_references() -> None:
    class Source:
        def get(self, ref: object) -> str:
            assert str(ref) == "aws-sm://resource#token_url"
            return "https://issuer.example/oauth2/token"

    settings = ResourceSettings.from_env(
        environ={"S2S_RESOURCE_TOKEN_URL": "aws-sm://resource#token_url"}, secrets=Source()
    )
    assert settings.token_url == "https://issuer.example/oauth2/token"


def test_module_app_is_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on this port: startup logs the failed prefetch and the app still serves.
    issuer = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("S2S_VERIFIER_ISSUER", issuer)
    monkeypatch.setenv("S2S_VERIFIER_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("S2S_VERIFIER_JWKS_URI", f"{issuer}/.well-known/jwks.json")
    monkeypatch.setenv("S2S_RESOURCE_PUBLIC_DOCS", "false")
    monkeypatch.delitem(sys.modules, "services.resource.app", raising=False)
    module = importlib.import_module("services.resource.app")
    app = module.app
    assert isinstance(app, Litestar)
    assert module.app is app
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        refused = client.get("/schema/openapi.json")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="orders"'


def test_module_app_without_settings_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S2S_VERIFIER_ISSUER", raising=False)
    monkeypatch.delenv("S2S_VERIFIER_AUDIENCE", raising=False)
    monkeypatch.delitem(sys.modules, "services.resource.app", raising=False)
    module = importlib.import_module("services.resource.app")
    with pytest.raises(ConfigError, match="S2S_VERIFIER_ISSUER"):
        _ = module.app
