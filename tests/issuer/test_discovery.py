"""OpenID Connect Discovery 1.0 §3 and RFC 8414 metadata of an issuer without login."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from s2s.issuer import InMemoryClientRegistry, IssuerSettings
from s2s.litestar.issuer import create_issuer_app
from tests.issuer.helpers import ISSUER
from tests.support import MemoryKeyStore

Client = TestClient[Litestar]

# OpenID Connect Discovery 1.0 §3: REQUIRED members (token_endpoint: unless only implicit).
OIDC_REQUIRED = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
)


def test_openid_configuration_has_every_required_member(client: Client) -> None:
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    meta = response.json()
    missing = [m for m in OIDC_REQUIRED if m not in meta]
    assert not missing, missing
    assert meta["issuer"] == ISSUER
    assert meta["authorization_endpoint"] == f"{ISSUER}/oauth2/authorize"
    assert meta["response_types_supported"] == ["none"]
    assert meta["subject_types_supported"] == ["public"]
    algs = meta["id_token_signing_alg_values_supported"]
    assert "RS256" in algs and "none" not in algs and not any(a.startswith("HS") for a in algs)
    assert meta["grant_types_supported"] == ["client_credentials"]


def test_rfc8414_metadata_names_no_authorization_endpoint(client: Client) -> None:
    meta = client.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == ISSUER
    assert "authorization_endpoint" not in meta and meta["response_types_supported"] == []
    oidc = client.get("/.well-known/openid-configuration").json()
    # Both documents agree on everything they share except what only the OIDC one must claim.
    for name, value in meta.items():
        if name != "response_types_supported":
            assert oidc[name] == value, name


@pytest.mark.parametrize(
    ("method", "params", "error"),
    [
        ("GET", {}, "invalid_request"),
        (
            "GET",
            {
                "response_type": "code",
                "client_id": "svc",
                "redirect_uri": "https://evil.example/cb",
                "state": "st4te-VALUE",
                "scope": "openid",
            },
            "unsupported_response_type",
        ),
        ("GET", {"response_type": "id_token token", "state": "st4te-VALUE"}, "unsupported_response_type"),
        ("GET", {"response_type": "none", "redirect_uri": "https://evil.example/cb"}, "access_denied"),
        ("POST", {"response_type": "code"}, "unsupported_response_type"),
    ],
)
def test_the_authorization_endpoint_answers_every_request_with_an_oauth_error(
    client: Client, method: str, params: dict[str, Any], error: str
) -> None:
    response = client.request(method, "/oauth2/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error and set(body) == {"error", "error_description"}
    # Nothing the caller sent is reflected.
    assert "evil.example" not in response.text and "st4te-VALUE" not in response.text


def test_an_issuer_url_with_a_path_serves_under_it() -> None:
    """MSAL Python wants a path segment in its authority: https://host/s2s serves its endpoints
    under /s2s, as its metadata names them (RFC 8414 §3.1 metadata with the path appended)."""
    issuer = "https://issuer.test/s2s"
    app = create_issuer_app(
        IssuerSettings(issuer=issuer),
        store=MemoryKeyStore(),
        registry=InMemoryClientRegistry([]),
        reload_loop=False,
    )
    with TestClient(app, base_url="https://issuer.test") as tc:
        oidc = tc.get("/s2s/.well-known/openid-configuration").json()
        assert oidc["issuer"] == issuer and oidc["token_endpoint"] == f"{issuer}/oauth2/token"
        for path in (
            "/.well-known/oauth-authorization-server/s2s",
            "/s2s/.well-known/oauth-authorization-server",
        ):
            assert tc.get(path).json()["issuer"] == issuer
        assert tc.get("/s2s/.well-known/jwks.json").json()["keys"]
        refused = tc.post("/s2s/oauth2/token", data={"grant_type": "client_credentials"})
        assert refused.status_code in (400, 401) and "error" in refused.json()
        assert tc.get("/s2s/oauth2/authorize").json()["error"] == "invalid_request"
