"""``GET /me/graph`` of the example resource service (services/resource), configured only from the
environment, against the local fake Entra ID and fake Microsoft Graph (HTTPS, test CA).

The caller's token is verified for real (JWKS over an httpx.MockTransport); the fake Entra ID then
exchanges it on behalf of the caller and the fake Graph answers ``/me`` for that subject.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.keys import KeyState, LocalSigner, SigningKey, generate_key
from s2s.verify import VerifierConfig
from services.resource.app import GRAPH_USER_READ, ResourceSettings, create_app, entra_configured
from tests.entra.conftest import CLIENT_ID, CLIENT_SECRET, TENANT, FakeEntra, FakeGraph, LocalCA
from tests.litestar.conftest import AUDIENCE, ISSUER, JwksServer


@pytest.fixture(autouse=True)
def _no_resource_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # S2S_RESOURCE_* of the developer's shell must not change what these tests see.
    for name in [n for n in os.environ if n.startswith("S2S_RESOURCE_")]:
        monkeypatch.delenv(name)


@dataclass
class Caller:
    """Mints the caller's tokens and builds the service that verifies them (JWKS of ``key``)."""

    key: SigningKey
    clock: FakeClock

    def token(self, sub: str = "erin", signing_key: SigningKey | None = None) -> str:
        now = int(self.clock.now())
        claims = {"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + 300, "jti": f"j-{sub}"}
        return LocalSigner().sign(signing_key or self.key, {"typ": "at+jwt"}, claims)

    def service(self, **options: Any) -> TestClient[Litestar]:
        settings = options.pop("settings", None) or ResourceSettings.from_env()
        app = create_app(
            VerifierConfig.for_s2s(ISSUER, AUDIENCE),
            settings,
            http_client=JwksServer([self.key]).client(),
            clock=self.clock,
            **options,
        )
        return TestClient(app)


@pytest.fixture
def caller(clock: FakeClock) -> Caller:
    return Caller(generate_key("ES256", now=clock.now(), state=KeyState.CURRENT), clock)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def entra_env(
    monkeypatch: pytest.MonkeyPatch, entra: FakeEntra, graph: FakeGraph, test_ca: LocalCA
) -> pytest.MonkeyPatch:
    """The S2S_ENTRA_* / S2S_RESOURCE_GRAPH_* settings of a deployment, pointed at the fakes.

    The fakes' certificates come from the test CA, trusted the way an operator trusts a private CA:
    REQUESTS_CA_BUNDLE (MSAL's requests) and SSL_CERT_FILE (httpx, for Graph)."""
    for name, value in {
        "S2S_ENTRA_TENANT_ID": TENANT,
        "S2S_ENTRA_CLIENT_ID": CLIENT_ID,
        "S2S_ENTRA_CLIENT_SECRET": CLIENT_SECRET,
        "S2S_ENTRA_AUTHORITY_HOST": entra.host,
        "S2S_RESOURCE_GRAPH_BASE_URL": graph.base_url,
        "REQUESTS_CA_BUNDLE": str(test_ca.ca_path),
        "SSL_CERT_FILE": str(test_ca.ca_path),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return monkeypatch


@pytest.fixture
def no_entra_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("S2S_ENTRA_")]:
        monkeypatch.delenv(name)


def test_me_graph_on_behalf_of_the_verified_caller(
    entra_env: pytest.MonkeyPatch,
    entra: FakeEntra,
    graph: FakeGraph,
    caller: Caller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    incoming = caller.token("erin")
    with caller.service() as client:
        response = client.get("/me/graph", headers=bearer(incoming))
        assert response.status_code == 200, response.text
        assert response.json()["userPrincipalName"] == "erin@example.test"
        # The caller's own token was exchanged, for the default Graph scope.
        [post] = entra.token_requests
        assert post.form["assertion"] == incoming
        assert post.form["requested_token_use"] == "on_behalf_of"
        assert GRAPH_USER_READ in post.form["scope"].split()
        # Graph saw the OBO token, never the caller's token.
        [call] = graph.server.requests
        assert call.headers["authorization"] == f"Bearer {entra.issued[0]}"
    assert CLIENT_SECRET not in caplog.text and incoming not in caplog.text


def test_me_graph_needs_a_verified_caller(
    entra_env: pytest.MonkeyPatch, entra: FakeEntra, caller: Caller
) -> None:
    stranger = generate_key("ES256", now=caller.clock.now(), state=KeyState.CURRENT)
    with caller.service() as client:
        assert client.get("/me/graph").status_code == 401
        forged = client.get("/me/graph", headers=bearer(caller.token(signing_key=stranger)))
        assert forged.status_code == 401
        assert forged.headers["www-authenticate"].startswith('Bearer realm="orders", error="invalid_token"')
    assert entra.token_requests == []


def test_entra_refusing_this_service_is_a_502_that_leaks_nothing(
    entra_env: pytest.MonkeyPatch,
    entra: FakeEntra,
    graph: FakeGraph,
    caller: Caller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-entra-secret-Qq1~0123456789"
    entra_env.setenv("S2S_ENTRA_CLIENT_SECRET", wrong)
    incoming = caller.token()
    with caller.service() as client:
        response = client.get("/me/graph", headers=bearer(incoming))
    assert response.status_code == 502
    assert response.json()["error"] == "upstream_error"
    assert response.headers["cache-control"] == "no-store"
    assert len(entra.token_requests) == 1
    assert graph.server.requests == []
    for text in (response.text, str(response.headers), caplog.text):
        assert wrong not in text and incoming not in text
    assert "AADSTS" not in response.text


def test_without_entra_settings_the_route_answers_501(no_entra_env: None, caller: Caller) -> None:
    assert not entra_configured()
    with caller.service() as client:
        assert client.get("/me/graph").status_code == 401  # still a protected route
        response = client.get("/me/graph", headers=bearer(caller.token()))
    assert response.status_code == 501
    body = response.json()
    assert body["error"] == "not_configured"
    assert "S2S_ENTRA_TENANT_ID" in body["error_description"]
    assert response.headers["cache-control"] == "no-store"


def test_entra_can_be_switched_off_explicitly(entra_env: pytest.MonkeyPatch, caller: Caller) -> None:
    with caller.service(settings=ResourceSettings(), entra=False) as client:
        assert client.get("/me/graph", headers=bearer(caller.token())).status_code == 501


def test_incomplete_entra_settings_fail_at_startup(
    no_entra_env: None, monkeypatch: pytest.MonkeyPatch, caller: Caller
) -> None:
    monkeypatch.setenv("S2S_ENTRA_TENANT_ID", TENANT)
    assert entra_configured()
    with pytest.raises(
        ConfigError, match="missing settings: S2S_ENTRA_CLIENT_ID, S2S_ENTRA_CLIENT_SECRET or "
    ):
        caller.service()
    monkeypatch.setenv("S2S_ENTRA_CLIENT_ID", CLIENT_ID)
    with pytest.raises(ConfigError, match="missing setting: S2S_ENTRA_CLIENT_SECRET or "):
        caller.service()


def test_graph_settings_from_env() -> None:
    assert ResourceSettings.from_env(environ={}).graph_scopes == (GRAPH_USER_READ,)
    settings = ResourceSettings.from_env(
        environ={
            "S2S_RESOURCE_GRAPH_SCOPES": "https://graph.microsoft.com/User.Read, https://graph.microsoft.com/Mail.Read",
            "S2S_RESOURCE_GRAPH_BASE_URL": "https://graph.microsoft.us/v1.0/",
        }
    )
    assert settings.graph_scopes == (
        "https://graph.microsoft.com/User.Read",
        "https://graph.microsoft.com/Mail.Read",
    )
    assert settings.graph_base_url == "https://graph.microsoft.us/v1.0"
    with pytest.raises(ConfigError, match="graph_base_url must use https"):
        ResourceSettings.from_env(environ={"S2S_RESOURCE_GRAPH_BASE_URL": "http://graph.example.com/v1.0"})


def test_graph_scopes_must_not_be_empty() -> None:
    with pytest.raises(ConfigError):
        ResourceSettings(graph_scopes=())
