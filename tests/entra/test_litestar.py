"""The Litestar OBO / Graph dependency behind the real verifier plugin (with a stub verifier)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from s2s.entra import ClientSecret, EntraApp
from s2s.litestar import S2SAuthPlugin
from s2s.litestar.entra import EntraOnBehalfOf, EntraPlugin, GraphDep, OboTokenDep
from s2s.verify import Principal
from s2s.verify.errors import InvalidToken
from tests.entra.conftest import CLIENT_SECRET, FakeEntra, FakeGraph, LocalCA, unverified_claims, user_token

GRAPH = "https://graph.microsoft.com/User.Read"


class StubVerifier:
    """Accepts exactly the tokens it was given (the plugin's own tests cover real verification)."""

    def __init__(self) -> None:
        self.accepted: set[str] = set()

    async def verify(self, token: str) -> Principal:
        if token not in self.accepted:
            raise InvalidToken("token not accepted")
        return Principal.from_claims(unverified_claims(token))


@get("/me/graph")
async def me_graph(graph: GraphDep) -> dict[str, Any]:
    return await graph.me()


@get("/token")
async def obo_route(obo_token: OboTokenDep) -> dict[str, Any]:
    return {"scopes": list(obo_token.scopes)}


@get("/public/graph", exclude_from_auth=True)
async def public_graph(graph: GraphDep) -> dict[str, Any]:
    return await graph.me()


Harness = tuple[TestClient[Litestar], StubVerifier]


@pytest.fixture
def build(entra: FakeEntra, graph: FakeGraph, test_ca: LocalCA) -> Iterator[Callable[..., Harness]]:
    opened: list[TestClient[Litestar]] = []
    apps: list[EntraApp] = []

    def make(secret: str = CLIENT_SECRET) -> Harness:
        verifier = StubVerifier()
        entra_app = EntraApp(
            entra.tenant,
            entra.client_id,
            ClientSecret(secret),
            authority=entra.authority,
            http_client=test_ca.session(),
        )
        apps.append(entra_app)
        obo = EntraOnBehalfOf(
            entra_app, [GRAPH], graph_base_url=graph.base_url, graph_verify=test_ca.client_context()
        )
        app = Litestar(
            [me_graph, obo_route, public_graph],
            plugins=[S2SAuthPlugin(verifier, realm="orders"), EntraPlugin(obo)],
            logging_config=None,
        )
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client, verifier

    yield make
    for c in opened:
        c.__exit__(None, None, None)
    for a in apps:
        a.close()


def test_me_graph_as_the_verified_caller(
    build: Callable[..., Harness], entra: FakeEntra, graph: FakeGraph
) -> None:
    client, verifier = build()
    incoming = user_token("erin")
    verifier.accepted.add(incoming)
    first = client.get("/me/graph", headers={"Authorization": f"Bearer {incoming}"})
    assert first.status_code == 200, first.text
    assert first.json()["userPrincipalName"] == "erin@example.test"
    [post] = entra.token_requests
    assert post.form["assertion"] == incoming
    second = client.get("/me/graph", headers={"Authorization": f"Bearer {incoming}"})
    assert second.status_code == 200
    assert len(entra.token_requests) == 1  # the OBO result was cached
    assert len(graph.server.requests) == 2
    assert client.get("/token", headers={"Authorization": f"Bearer {incoming}"}).json() == {"scopes": [GRAPH]}


def test_unauthenticated_requests_never_reach_entra(build: Callable[..., Harness], entra: FakeEntra) -> None:
    client, _ = build()
    assert client.get("/me/graph").status_code == 401
    refused = client.get("/me/graph", headers={"Authorization": f"Bearer {user_token()}"})
    assert refused.status_code == 401
    assert entra.token_requests == []


def test_excluded_route_does_not_exchange_an_unverified_token(
    build: Callable[..., Harness], entra: FakeEntra
) -> None:
    client, _ = build()
    incoming = user_token("mallory")
    response = client.get("/public/graph", headers={"Authorization": f"Bearer {incoming}"})
    assert response.status_code == 401
    assert entra.token_requests == []
    assert incoming not in response.text


def test_step_up_challenge_carries_the_claims(
    build: Callable[..., Harness], entra: FakeEntra, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client, verifier = build()
    incoming = user_token()
    verifier.accepted.add(incoming)
    claims = '{"access_token":{"capolids":{"essential":true,"values":["c1"]}}}'
    entra.script.append(
        entra.error(400, "interaction_required", "AADSTS50076: MFA.", code=50076, claims=claims)
    )
    response = client.get("/me/graph", headers={"Authorization": f"Bearer {incoming}"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_claims"' in challenge
    assert f'claims="{base64.b64encode(claims.encode()).decode()}"' in challenge
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "insufficient_claims"
    assert (
        incoming not in response.text
        and incoming not in str(response.headers)
        and incoming not in caplog.text
    )


def test_invalid_client_is_a_bad_gateway_without_details(
    build: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-for-litestar-9"
    client, verifier = build(secret=wrong)
    incoming = user_token()
    verifier.accepted.add(incoming)
    response = client.get("/me/graph", headers={"Authorization": f"Bearer {incoming}"})
    assert response.status_code == 502
    assert response.json()["error"] == "upstream_error"
    assert "AADSTS" not in response.text
    for leaked in (wrong, incoming):
        assert leaked not in response.text and leaked not in caplog.text


def test_throttled_entra_is_503_with_retry_after(build: Callable[..., Harness], entra: FakeEntra) -> None:
    client, verifier = build()
    incoming = user_token()
    verifier.accepted.add(incoming)
    entra.script.append((429, {"Retry-After": "90"}, {"error": "temporarily_unavailable"}))
    response = client.get("/me/graph", headers={"Authorization": f"Bearer {incoming}"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "90"


def test_graph_forbidden_is_403(build: Callable[..., Harness], graph: FakeGraph) -> None:
    client, verifier = build()
    incoming = user_token()
    verifier.accepted.add(incoming)
    graph.script.append((403, {}, {"error": {"code": "Authorization_RequestDenied", "message": "no"}}))
    response = client.get("/me/graph", headers={"Authorization": f"Bearer {incoming}"})
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
