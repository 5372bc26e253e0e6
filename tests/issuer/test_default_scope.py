"""Entra-style ``scope=<audience>/.default``: that audience, with every scope the client is allowed;
the only way MSAL names a resource in client credentials."""

from __future__ import annotations

import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.issuer.helpers import AUDIENCE, OTHER_AUDIENCE, SECRET, basic

Client = TestClient[Litestar]

CC = {"grant_type": "client_credentials"}


def token_for(client: Client, client_id: str, **form: str) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/oauth2/token", data={**CC, **form}, headers={"Authorization": basic(client_id, SECRET)}
    )
    body = response.json()
    assert SECRET not in response.text
    return response.status_code, body


@pytest.mark.parametrize("audience", [AUDIENCE, OTHER_AUDIENCE])
def test_default_scope_picks_one_of_several_audiences(client: Client, audience: str) -> None:
    status, body = token_for(client, "multi", scope=f"{audience}/.default")
    assert status == 200, body
    claims = jwt.decode(str(body["access_token"]), options={"verify_signature": False})
    assert claims["aud"] == audience and claims["scope"] == "a"
    # The response names the grant as it was asked for: MSAL caches the token under that scope.
    assert body["scope"] == f"{audience}/.default"


def test_default_scope_means_every_allowed_scope(client: Client) -> None:
    status, body = token_for(client, "svc", scope=f"  {AUDIENCE}/.default ")
    assert status == 200, body
    claims = jwt.decode(str(body["access_token"]), options={"verify_signature": False})
    assert claims["scope"] == "orders:read orders:write" and body["scope"] == f"{AUDIENCE}/.default"
    # The same audience also named by `resource` or `audience`: consistent, accepted.
    status, body = token_for(client, "svc", scope=f"{AUDIENCE}/.default", resource=AUDIENCE)
    assert status == 200, body


@pytest.mark.parametrize(
    ("client_id", "form", "error"),
    [
        ("svc", {"scope": f"{AUDIENCE}/.default orders:read"}, "invalid_scope"),
        ("svc", {"scope": f"orders:read {AUDIENCE}/.default"}, "invalid_scope"),
        ("multi", {"scope": f"{AUDIENCE}/.default {OTHER_AUDIENCE}/.default"}, "invalid_scope"),
        ("svc", {"scope": f"{OTHER_AUDIENCE}/.default"}, "invalid_scope"),
        ("svc", {"scope": "/.default"}, "invalid_scope"),
        ("multi", {"scope": f"{AUDIENCE}/.default", "audience": OTHER_AUDIENCE}, "invalid_request"),
    ],
)
def test_default_scope_refusals(client: Client, client_id: str, form: dict[str, str], error: str) -> None:
    status, body = token_for(client, client_id, **form)
    assert status == 400 and body["error"] == error, body
    assert "access_token" not in body
