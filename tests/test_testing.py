"""s2s.testing: tokens for a test app, no issuer running, through the real verifier and plugin."""

from __future__ import annotations

import asyncio
import json

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.jose import PRIVATE_MEMBERS, b64url_decode
from s2s.litestar import PrincipalDep, S2SAuthPlugin, requires_scopes
from s2s.testing import TestIssuer
from s2s.verify import ExpiredToken, InvalidAudience, SyncTokenVerifier, TokenVerifier, UnknownKey

AUDIENCE = "orders-api"


@get("/orders", requires=requires_scopes("orders:read"))
async def orders(principal: PrincipalDep) -> dict[str, str]:
    return {"sub": principal.subject}


def _app(issuer: TestIssuer) -> Litestar:
    plugin = S2SAuthPlugin(issuer.verifier_config(audience=AUDIENCE), http_client=issuer.http_client())
    return Litestar([orders], plugins=[plugin])


def test_a_minted_token_passes_the_plugin_and_its_guards() -> None:
    issuer = TestIssuer()
    with TestClient(_app(issuer)) as http:
        ok = http.get("/orders", headers=issuer.bearer(subject="billing", scopes=["orders:read"]))
        assert ok.status_code == 200 and ok.json() == {"sub": "billing"}
        short = http.get("/orders", headers=issuer.bearer(scopes=["orders:write"]))
        assert short.status_code == 403 and 'error="insufficient_scope"' in short.headers["www-authenticate"]
        assert http.get("/orders").status_code == 401


def test_tokens_of_another_test_issuer_are_refused() -> None:
    trusted, stranger = TestIssuer(), TestIssuer()
    with TestClient(_app(trusted)) as http:
        token = stranger.mint(audience=AUDIENCE, scopes=["orders:read"])
        answer = http.get("/orders", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401 and 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_claims_are_the_issuers_and_the_jwks_holds_no_private_member() -> None:
    issuer = TestIssuer("https://issuer.test/")
    issuer.verifier_config(audience=AUDIENCE)
    token = issuer.mint(scopes=["a", "b"], roles=["admin"], tenant="t1")
    header, claims = (json.loads(b64url_decode(part)) for part in token.split(".")[:2])
    assert header == {"typ": "at+jwt", "alg": "ES256", "kid": issuer.key.kid}
    assert claims["iss"] == "https://issuer.test" and claims["aud"] == AUDIENCE
    assert claims["scope"] == "a b" and claims["roles"] == ["admin"] and claims["tenant"] == "t1"
    assert claims["exp"] - claims["iat"] == 300 and claims["sub"] == claims["client_id"] == "test-client"
    keys = issuer.jwks["keys"]
    assert [k["kid"] for k in keys] == [issuer.key.kid]
    assert not set(keys[0]) & set(PRIVATE_MEMBERS)


def test_expiry_follows_the_shared_clock_and_other_refusals_are_typed() -> None:
    clock = FakeClock()
    issuer = TestIssuer(clock=clock, ttl=60)
    config = issuer.verifier_config(audience=AUDIENCE, leeway=0)

    async def scenario() -> None:
        async with issuer.http_client() as http:
            verifier = TokenVerifier(config, http_client=http, clock=clock)
            token = issuer.mint(scopes=["orders:read"])
            assert (await verifier.verify(token)).subject == "test-client"
            clock.advance(61)
            with pytest.raises(ExpiredToken):
                await verifier.verify(token)
            with pytest.raises(InvalidAudience):
                await verifier.verify(issuer.mint(audience="billing-api"))
            await verifier.aclose()

    asyncio.run(scenario())
    assert issuer.requests >= 1


def test_the_sync_verifier_trusts_it_too() -> None:
    issuer = TestIssuer(alg="RS256")
    with issuer.sync_http_client() as http:
        verifier = SyncTokenVerifier(issuer.verifier_config(audience=AUDIENCE), http_client=http)
        assert verifier.verify(issuer.mint(subject="svc")).subject == "svc"
        forged = TestIssuer().mint(audience=AUDIENCE)
        with pytest.raises(UnknownKey):
            verifier.verify(forged)


def test_mint_without_an_audience_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="audience"):
        TestIssuer().mint()
