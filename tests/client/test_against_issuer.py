"""The token clients against the real issuer app (create_issuer_app)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from litestar import Litestar

from s2s.client import AsyncTokenClient, BearerAuth, PrivateKeyJWT, TokenClient, TokenRequestError
from s2s.clock import FakeClock
from tests.client.conftest import AUDIENCE, OTHER_AUDIENCE, Counting, LiveIssuer
from tests.client.helpers import logged
from tests.issuer.helpers import SECRET, PkjClient

pytestmark = pytest.mark.anyio
ISSUER = "https://issuer.test"
TOKEN_URL = f"{ISSUER}/oauth2/token"
TOKEN_PATH = "/oauth2/token"


def pem(pkj: PkjClient) -> bytes:
    return pkj.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


async def verify(token: str, transport: httpx.AsyncBaseTransport, audience: str = AUDIENCE) -> dict[str, Any]:
    """Checks the token as an independent verifier (PyJWT) would, against the issuer's JWKS."""
    async with httpx.AsyncClient(transport=transport) as http:
        jwks = (await http.get(f"{ISSUER}/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token, jwt.PyJWK(key).key, algorithms=[header["alg"]], audience=audience, issuer=ISSUER
    )
    return claims


async def test_client_secret_token_from_the_issuer(
    counting: Counting, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with AsyncTokenClient(
        TOKEN_URL, client_id="svc", client_secret=SECRET, transport=counting
    ) as client:
        token = await client.get_token(AUDIENCE, ["orders:read"])
        assert await client.get_token(AUDIENCE, ["orders:read"]) is token
        other = await client.get_token(OTHER_AUDIENCE)
    claims = await verify(token.token, counting)
    assert claims["client_id"] == "svc" and claims["scope"] == "orders:read"
    assert token.scopes == ("orders:read",)
    assert token.expires_at == pytest.approx(claims["exp"], abs=2)
    assert (await verify(other.token, counting, OTHER_AUDIENCE))["aud"] == OTHER_AUDIENCE
    assert counting.counts[TOKEN_PATH] == 2
    assert SECRET not in logged(caplog.records)
    assert token.token not in logged(caplog.records)


async def test_private_key_jwt_from_a_file(
    counting: Counting, pkj: PkjClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key_file = tmp_path / "client.pem"
    key_file.write_bytes(pem(pkj))
    sent: list[str] = []

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            body = request.content.decode()
            sent.extend(v for k, v in (p.split("=", 1) for p in body.split("&")) if k == "client_assertion")
            return await counting.handle_async_request(request)

    client = AsyncTokenClient(TOKEN_URL, client_id="pkj", private_key=str(key_file), transport=Recording())
    assert isinstance(client._flows.credential, PrivateKeyJWT)
    assert client._flows.credential.kid == pkj.kid  # the thumbprint, as the issuer registered it
    first = await client.get_token(AUDIENCE, ["orders:read"])
    client.clear()
    second = await client.get_token(AUDIENCE, ["orders:read"])  # a new assertion: no replay refusal
    assert first.token != second.token
    claims = await verify(second.token, counting)
    assert claims["client_id"] == "pkj"
    assert len(set(sent)) == 2
    assertion = jwt.decode(sent[0], options={"verify_signature": False})
    assert assertion["iss"] == assertion["sub"] == "pkj" and assertion["aud"] == TOKEN_URL
    assert assertion["exp"] - assertion["iat"] <= 60
    assert jwt.get_unverified_header(sent[0])["kid"] == pkj.kid
    text = logged(caplog.records)
    assert all(a not in text for a in sent)
    await client.aclose()


async def test_private_key_jwt_with_an_unregistered_key_is_invalid_client(counting: Counting) -> None:
    from tests.issuer.helpers import make_pkj

    stranger = make_pkj("pkj")  # same client id, a key the issuer does not know
    client = AsyncTokenClient(
        TOKEN_URL, client_id="pkj", private_key=PrivateKeyJWT(pem(stranger)), transport=counting
    )
    with pytest.raises(TokenRequestError) as info:
        await client.get_token(AUDIENCE)
    assert info.value.error == "invalid_client" and info.value.status_code == 401
    assert counting.counts[TOKEN_PATH] == 1  # not retried


async def test_issuer_refusals_are_typed(counting: Counting, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + SECRET
    bad = AsyncTokenClient(TOKEN_URL, client_id="svc", client_secret=wrong, transport=counting)
    with pytest.raises(TokenRequestError) as info:
        await bad.get_token(AUDIENCE)
    assert (info.value.error, info.value.status_code) == ("invalid_client", 401)
    assert wrong not in str(info.value) and wrong not in logged(caplog.records)
    good = AsyncTokenClient(TOKEN_URL, client_id="svc", client_secret=SECRET, transport=counting)
    with pytest.raises(TokenRequestError) as info:
        await good.get_token("https://elsewhere.internal")
    assert info.value.error == "invalid_target"
    with pytest.raises(TokenRequestError) as info:
        await good.get_token(AUDIENCE, ["orders:delete"])
    assert info.value.error == "invalid_scope"
    assert SECRET not in logged(caplog.records)


async def test_discovery_finds_the_token_endpoint(counting: Counting) -> None:
    client = AsyncTokenClient(issuer=ISSUER, client_id="svc", client_secret=SECRET, transport=counting)
    assert client.token_endpoint is None
    # two different tokens at a cold start: one discovery between them
    token, _ = await asyncio.gather(client.get_token(AUDIENCE), client.get_token(OTHER_AUDIENCE))
    assert client.token_endpoint == TOKEN_URL
    assert counting.counts == {"/.well-known/oauth-authorization-server": 1, TOKEN_PATH: 2}
    assert (await verify(token.token, counting))["client_id"] == "svc"


async def test_1000_concurrent_callers_at_a_cold_start_make_one_token_request(counting: Counting) -> None:
    callers = 1000
    client = AsyncTokenClient(TOKEN_URL, client_id="svc", client_secret=SECRET, transport=counting)

    async def everyone_joined() -> None:
        # The one request waits until all other callers are waiting on it (not served by the cache).
        while client.stats.joined < callers - 1:
            await asyncio.sleep(0)

    counting.gate = everyone_joined
    tokens = await asyncio.wait_for(
        asyncio.gather(*(client.get_token(AUDIENCE, ["orders:read"]) for _ in range(callers))), 60
    )
    assert counting.counts[TOKEN_PATH] == 1
    assert len({t.token for t in tokens}) == 1
    assert client.stats.joined == callers - 1


async def test_bearer_auth_calls_a_resource_with_an_issuer_token(
    counting: Counting, asgi_issuer: Litestar
) -> None:
    seen: list[dict[str, Any]] = []

    async def resource(request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        seen.append(await verify(token, counting))
        return httpx.Response(200, json={"ok": True})

    tokens = AsyncTokenClient(TOKEN_URL, client_id="svc", client_secret=SECRET, transport=counting)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(resource), auth=BearerAuth(tokens, AUDIENCE, ["orders:read"])
    ) as http:
        for _ in range(3):
            assert (await http.get("https://orders.internal/orders")).status_code == 200
    assert [c["scope"] for c in seen] == ["orders:read"] * 3
    assert counting.counts[TOKEN_PATH] == 1


def test_sync_client_against_a_live_issuer(live_issuer: LiveIssuer, pkj: PkjClient, clock: FakeClock) -> None:
    with TokenClient(issuer=live_issuer.url, client_id="svc", client_secret=SECRET) as client:
        token = client.get_token(AUDIENCE, ["orders:write"])
        assert client.get_token(AUDIENCE, ["orders:write"]) is token
        assert client.token_endpoint == f"{live_issuer.url}/oauth2/token"
        with pytest.raises(TokenRequestError) as info:
            client.get_token(AUDIENCE, ["nope"])
        assert info.value.error == "invalid_scope"
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["scope"] == "orders:write" and claims["aud"] == AUDIENCE
    with TokenClient(
        f"{live_issuer.url}/oauth2/token", client_id="pkj", private_key=PrivateKeyJWT(pem(pkj)), clock=clock
    ) as client:
        assert (
            jwt.decode(client.get_token(AUDIENCE).token, options={"verify_signature": False})["client_id"]
            == "pkj"
        )
    assert client.stats.requests == 1


def test_sync_client_reports_an_unreachable_issuer(clock: FakeClock) -> None:
    from s2s.client import RetryPolicy, TokenEndpointUnreachable
    from tests.support import free_port

    url = f"http://127.0.0.1:{free_port()}/oauth2/token"  # nothing listens there
    sleeps: list[float] = []
    client = TokenClient(
        url,
        client_id="svc",
        client_secret=SECRET,
        clock=clock,
        sleep=sleeps.append,
        retry=RetryPolicy(attempts=3),
    )
    with pytest.raises(TokenEndpointUnreachable) as info:
        client.get_token(AUDIENCE)
    assert len(sleeps) == 2 and "ConnectError" in str(info.value)
    assert SECRET not in str(info.value)
    client.close()


async def test_discovery_refuses_metadata_of_another_issuer() -> None:
    from s2s.client import DiscoveryError

    def metadata(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"issuer": "https://evil.test", "token_endpoint": "https://evil.test/t"}
        )

    client = AsyncTokenClient(
        issuer=ISSUER, client_id="svc", client_secret=SECRET, transport=httpx.MockTransport(metadata)
    )
    with pytest.raises(DiscoveryError) as info:
        await client.get_token(AUDIENCE)
    assert info.value.error == "discovery_failed" and client.token_endpoint is None
