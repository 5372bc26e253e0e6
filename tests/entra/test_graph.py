from __future__ import annotations

import base64
import logging

import httpx
import pytest

from s2s.entra import (
    GraphClient,
    GraphForbidden,
    GraphNotFound,
    GraphThrottled,
    GraphUnauthorized,
    GraphUnavailable,
    parse_claims_challenge,
)
from s2s.errors import ConfigError
from tests.entra.conftest import FakeEntra, FakeGraph, LocalCA, user_token

pytestmark = pytest.mark.anyio


async def _token(entra: FakeEntra, make_app: object) -> str:
    app = make_app()  # type: ignore[operator]
    return (await app.on_behalf_of(user_token("dave"), ["https://graph.microsoft.com/User.Read"])).token


async def test_me_over_https(entra: FakeEntra, graph: FakeGraph, test_ca: LocalCA, make_app: object) -> None:
    token = await _token(entra, make_app)
    async with GraphClient(token, base_url=graph.base_url, verify=test_ca.client_context()) as client:
        me = await client.me()
    assert me["userPrincipalName"] == "dave@example.test"
    [call] = graph.server.requests
    assert call.path == "/v1.0/me" and call.headers["authorization"] == f"Bearer {token}"


async def test_token_provider_is_called_per_request(
    graph: FakeGraph, entra: FakeEntra, test_ca: LocalCA, make_app: object
) -> None:
    token = await _token(entra, make_app)
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return token

    async with GraphClient(provider, base_url=graph.base_url, verify=test_ca.client_context()) as client:
        await client.me()
        await client.get("me")
    assert calls == 2


async def test_graph_errors_are_typed_and_do_not_leak_the_token(
    graph: FakeGraph, entra: FakeEntra, test_ca: LocalCA, make_app: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await _token(entra, make_app)
    graph.script.append(
        (
            403,
            {},
            {"error": {"code": "Authorization_RequestDenied", "message": f"Insufficient privileges {token}"}},
        )
    )
    graph.script.append(
        (429, {"Retry-After": "12"}, {"error": {"code": "TooManyRequests", "message": "slow down"}})
    )
    graph.script.append((503, {}, b"<html>down</html>"))
    async with GraphClient(token, base_url=graph.base_url, verify=test_ca.client_context()) as client:
        with pytest.raises(GraphForbidden) as forbidden:
            await client.me()
        with pytest.raises(GraphThrottled) as throttled:
            await client.me()
        with pytest.raises(GraphUnavailable):
            await client.me()
        with pytest.raises(GraphNotFound) as missing:
            await client.get("/users/nobody")
    assert forbidden.value.code == "Authorization_RequestDenied" and forbidden.value.status_code == 403
    assert token not in str(forbidden.value)
    assert throttled.value.retry_after == 12.0
    assert missing.value.code == "Request_ResourceNotFound"
    assert token not in caplog.text


async def test_unknown_token_is_unauthorized(graph: FakeGraph, test_ca: LocalCA) -> None:
    async with GraphClient(
        "not-issued-by-entra", base_url=graph.base_url, verify=test_ca.client_context()
    ) as c:
        with pytest.raises(GraphUnauthorized) as info:
            await c.me()
    assert info.value.code == "InvalidAuthenticationToken" and info.value.claims is None


async def test_claims_challenge_from_graph_is_surfaced(graph: FakeGraph, test_ca: LocalCA) -> None:
    claims = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
    encoded = base64.b64encode(claims.encode()).decode()
    challenge = (
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
        f'error="insufficient_claims", claims="{encoded}"'
    )
    graph.script.append(
        (401, {"WWW-Authenticate": challenge}, {"error": {"code": "InvalidAuthenticationToken"}})
    )
    async with GraphClient("t0ken-value", base_url=graph.base_url, verify=test_ca.client_context()) as c:
        with pytest.raises(GraphUnauthorized) as info:
            await c.me()
    assert info.value.claims == claims
    assert parse_claims_challenge('Bearer error="invalid_token"') is None


async def test_the_token_is_never_sent_to_another_host(graph: FakeGraph, test_ca: LocalCA) -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json={}))
    async with GraphClient("t0ken-value", base_url="https://graph.example/v1.0", transport=transport) as c:
        for bad in ("https://evil.example/steal", "//evil.example/x", "http://graph.example/v1.0/me"):
            with pytest.raises(ConfigError):
                await c.get(bad)
        await c.get("https://graph.example/v1.0/me/messages?$skiptoken=x")  # an @odata.nextLink
    assert [str(r.url) for r in seen] == ["https://graph.example/v1.0/me/messages?$skiptoken=x"]


async def test_network_failure_is_graph_unavailable() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with GraphClient("t0ken-value", transport=httpx.MockTransport(fail)) as c:
        with pytest.raises(GraphUnavailable):
            await c.me()


async def test_a_non_ascii_retry_after_from_graph_is_a_typed_error() -> None:
    def throttle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers=[(b"Retry-After", b"\xb2")], json={"error": {"code": "TooMany"}})

    async with GraphClient("t0ken-value", transport=httpx.MockTransport(throttle)) as client:
        with pytest.raises(GraphThrottled) as info:
            await client.me()
    assert info.value.retry_after is None
