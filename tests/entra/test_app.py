from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization

from s2s.clock import FakeClock
from s2s.entra import (
    CertificateCredential,
    ClientSecret,
    EntraApp,
    EntraConfig,
    EntraInteractionRequired,
    EntraInvalidClient,
    EntraInvalidGrant,
    EntraThrottled,
    EntraUnavailable,
    MemoryTokenCache,
    PfxCredential,
)
from s2s.errors import ConfigError
from s2s.http import parse_retry_after
from tests.entra.conftest import (
    CLIENT_SECRET,
    ClientCert,
    FakeEntra,
    Sleeps,
    b64url,
    unverified_claims,
    unverified_header,
    user_token,
)

pytestmark = pytest.mark.anyio

GRAPH = "https://graph.microsoft.com/User.Read"
MakeApp = Callable[..., EntraApp]


async def test_client_credentials(
    entra: FakeEntra, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app()
    token = await app.for_client(["api://downstream/.default"])
    assert unverified_claims(token.token)["aud"] == "api://downstream"
    assert token.token in entra.issued
    assert token.from_cache is False
    [post] = entra.token_requests
    assert post.form["grant_type"] == "client_credentials"
    assert post.form["client_secret"] == CLIENT_SECRET
    assert post.form["scope"] == "api://downstream/.default"
    # MSAL's own cache serves the second call: no second token request.
    again = await app.for_client("api://downstream/.default")
    assert again.token == token.token and again.from_cache is True
    assert len(entra.token_requests) == 1
    assert CLIENT_SECRET not in repr(app) and token.token not in repr(token)
    assert CLIENT_SECRET not in caplog.text and token.token not in caplog.text


async def test_on_behalf_of(entra: FakeEntra, make_app: MakeApp) -> None:
    app = make_app()
    incoming = user_token("alice")
    token = await app.on_behalf_of(incoming, [GRAPH, "openid"])
    [post] = entra.token_requests
    assert post.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert post.form["requested_token_use"] == "on_behalf_of"
    assert post.form["assertion"] == incoming
    # MSAL adds the OIDC scopes itself; "openid" passed by the caller was dropped, not doubled.
    assert set(post.form["scope"].split()) == {GRAPH, "openid", "profile", "offline_access"}
    claims = unverified_claims(token.token)
    assert claims["sub"] == "alice" and claims["scp"] == "User.Read"


async def test_on_behalf_of_only_reserved_scopes_is_a_config_error(make_app: MakeApp) -> None:
    with pytest.raises(ConfigError):
        await make_app().on_behalf_of(user_token(), ["openid", "profile"])


async def test_on_behalf_of_without_token_is_refused(entra: FakeEntra, make_app: MakeApp) -> None:
    with pytest.raises(EntraInvalidGrant):
        await make_app().on_behalf_of("  ", [GRAPH])
    assert entra.token_requests == []


async def test_obo_results_are_cached_until_shortly_before_expiry(
    entra: FakeEntra, make_app: MakeApp, clock: FakeClock
) -> None:
    app = make_app(obo_refresh_margin=300)
    alice, bob = user_token("alice"), user_token("bob")
    first = await app.on_behalf_of(alice, [GRAPH])
    second = await app.on_behalf_of(alice, [GRAPH])
    assert second.token == first.token and second.from_cache
    assert len(entra.token_requests) == 1  # the second call made no HTTP request
    await app.on_behalf_of(bob, [GRAPH])  # another user: another exchange
    await app.on_behalf_of(alice, [GRAPH, "https://graph.microsoft.com/Mail.Read"])  # other scopes
    assert len(entra.token_requests) == 3
    clock.advance(3600 - 300 - 1)  # still more than the margin left
    assert (await app.on_behalf_of(alice, [GRAPH])).token == first.token
    assert len(entra.token_requests) == 3
    clock.advance(1)  # now within the margin: refreshed
    refreshed = await app.on_behalf_of(alice, [GRAPH])
    assert refreshed.token != first.token and not refreshed.from_cache
    assert len(entra.token_requests) == 4


async def test_concurrent_obo_calls_share_one_request(entra: FakeEntra, make_app: MakeApp) -> None:
    app = make_app()
    incoming = user_token("carol")
    tokens = await asyncio.gather(*(app.on_behalf_of(incoming, [GRAPH]) for _ in range(20)))
    assert len({t.token for t in tokens}) == 1
    assert len(entra.token_requests) == 1


async def test_claims_challenge_bypasses_the_obo_cache(entra: FakeEntra, make_app: MakeApp) -> None:
    app = make_app()
    incoming = user_token()
    await app.on_behalf_of(incoming, [GRAPH])
    await app.on_behalf_of(incoming, [GRAPH], claims_challenge='{"access_token":{"acrs":{"essential":true}}}')
    assert len(entra.token_requests) == 2
    assert "acrs" in entra.token_requests[1].form["claims"]


async def test_msal_runs_off_the_event_loop_with_bounded_concurrency(
    entra: FakeEntra, make_app: MakeApp
) -> None:
    entra.server.delay = 0.15
    app = make_app(max_concurrency=2)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    tokens = await asyncio.gather(*(app.on_behalf_of(user_token(f"u{i}"), [GRAPH]) for i in range(5)))
    done.set()
    await tick_task
    assert len(tokens) == 5 and len(entra.token_requests) == 5
    assert entra.server.max_active <= 2
    assert ticks > 1  # the loop kept running while MSAL waited on HTTP


async def test_certificate_credential_signs_the_client_assertion(
    entra: FakeEntra, make_app: MakeApp, client_cert: ClientCert
) -> None:
    app = make_app(CertificateCredential(client_cert.key_pem, client_cert.thumbprint_sha1))
    await app.for_client("api://downstream/.default")
    [post] = entra.token_requests
    assert "client_secret" not in post.form
    assert post.form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = post.form["client_assertion"]
    header = unverified_header(assertion)
    der = client_cert.cert.public_bytes(serialization.Encoding.DER)
    assert header["x5t"].rstrip("=") == b64url(hashlib.sha1(der).digest())
    claims = pyjwt.decode(
        assertion,
        client_cert.cert.public_key(),
        algorithms=[header["alg"]],
        audience=entra.token_endpoint,
        issuer=entra.client_id,
    )
    assert claims["sub"] == entra.client_id
    assert client_cert.key_pem not in repr(app)


async def test_pfx_credential_signs_the_client_assertion(
    entra: FakeEntra, make_app: MakeApp, client_cert: ClientCert
) -> None:
    app = make_app(PfxCredential(client_cert.pfx, client_cert.pfx_password))
    await app.for_client("api://downstream/.default")
    assertion = entra.token_requests[0].form["client_assertion"]
    header = unverified_header(assertion)
    der = client_cert.cert.public_bytes(serialization.Encoding.DER)
    assert header["x5t"].rstrip("=") == b64url(hashlib.sha1(der).digest())
    # The certificate from the PFX travels as x5c too (subject name / issuer authentication).
    assert base64.b64decode("".join(header["x5c"][0].split())) == der
    pyjwt.decode(
        assertion,
        client_cert.cert.public_key(),
        algorithms=[header["alg"]],
        audience=entra.token_endpoint,
        issuer=entra.client_id,
    )


def test_bad_pfx_password_is_a_config_error(client_cert: ClientCert) -> None:
    with pytest.raises(ConfigError) as info:
        PfxCredential(client_cert.pfx, "Not-The-Pass-42").resolved(None)
    assert "Not-The-Pass-42" not in str(info.value)


def test_bad_thumbprint_or_key_is_a_config_error(client_cert: ClientCert) -> None:
    with pytest.raises(ConfigError):
        CertificateCredential(client_cert.key_pem, "abc").resolved(None)
    with pytest.raises(ConfigError):
        CertificateCredential("not a key", client_cert.thumbprint_sha1).resolved(None)


async def test_invalid_client(entra: FakeEntra, make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-value-123"
    app = make_app(ClientSecret(wrong))
    with pytest.raises(EntraInvalidClient) as info:
        await app.for_client("api://downstream/.default")
    assert info.value.error == "invalid_client"
    assert 7000215 in info.value.error_codes
    assert wrong not in str(info.value) and wrong not in caplog.text


async def test_interaction_required_keeps_the_claims_challenge(
    entra: FakeEntra, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    claims = '{"access_token":{"capolids":{"essential":true,"values":["c1"]}}}'
    entra.script.append(
        entra.error(400, "interaction_required", "AADSTS50076: MFA required.", code=50076, claims=claims)
    )
    app = make_app()
    incoming = user_token()
    with pytest.raises(EntraInteractionRequired) as info:
        await app.on_behalf_of(incoming, [GRAPH])
    exc = info.value
    assert exc.error == "interaction_required" and exc.claims == claims
    header = app.challenge_header(exc)
    assert header.startswith("Bearer ")
    assert 'error="insufficient_claims"' in header
    assert f'claims="{base64.b64encode(claims.encode()).decode()}"' in header
    assert f'authorization_uri="{entra.authority}/oauth2/v2.0/authorize"' in header
    assert incoming not in str(exc) and incoming not in caplog.text
    # A failure is not cached as a success: the next call asks again.
    await app.on_behalf_of(incoming, [GRAPH, "https://graph.microsoft.com/Mail.Read"])


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(
    entra: FakeEntra, make_app: MakeApp, sleeps: Sleeps, status: int
) -> None:
    entra.script.append((status, {"Retry-After": "7"}, {"error": "temporarily_unavailable"}))
    token = await make_app().for_client("api://downstream/.default")
    assert token.token in entra.issued
    assert sleeps.calls == [7.0]
    assert len(entra.token_requests) == 2


async def test_429_gives_up_after_bounded_retries(
    entra: FakeEntra, make_app: MakeApp, sleeps: Sleeps
) -> None:
    for _ in range(3):
        entra.script.append((429, {"Retry-After": "2"}, {"error": "temporarily_unavailable"}))
    app = make_app(max_retries=2)
    with pytest.raises(EntraThrottled) as info:
        await app.for_client("api://downstream/.default")
    assert info.value.retry_after == 2.0
    assert sleeps.calls == [2.0, 2.0]
    assert len(entra.token_requests) == 3


async def test_429_with_a_long_retry_after_is_not_waited_for(
    entra: FakeEntra, make_app: MakeApp, sleeps: Sleeps
) -> None:
    entra.script.append((429, {"Retry-After": "120"}, {"error": "temporarily_unavailable"}))
    with pytest.raises(EntraThrottled) as info:
        await make_app(max_retry_after=30).on_behalf_of(user_token(), [GRAPH])
    assert info.value.retry_after == 120.0
    assert sleeps.calls == []
    assert len(entra.token_requests) == 1


async def test_non_json_5xx_is_a_typed_error(entra: FakeEntra, make_app: MakeApp, sleeps: Sleeps) -> None:
    entra.script.append((500, {"Content-Type": "text/html"}, b"<html>oops</html>"))
    with pytest.raises(EntraUnavailable) as info:
        await make_app().for_client("api://downstream/.default")
    assert not isinstance(info.value, EntraThrottled)
    assert sleeps.calls == [] and len(entra.token_requests) == 1  # a 500 without Retry-After is not retried


def test_retry_after_parsing(clock: FakeClock) -> None:
    from email.utils import formatdate

    now = clock.now()
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(formatdate(now + 45, usegmt=True), now) == 45.0
    assert parse_retry_after(formatdate(now - 45, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


async def test_token_cache_is_persisted_and_reloaded(entra: FakeEntra, make_app: MakeApp) -> None:
    store = MemoryTokenCache()
    first = await make_app(token_cache=store).for_client("api://downstream/.default")
    assert store.saves == 1 and store.data is not None
    assert json.loads(store.data)["AccessToken"]
    # A new app object (a restart) starts from the persisted cache: no second token request.
    again = await make_app(token_cache=store).for_client("api://downstream/.default")
    assert again.token == first.token and again.from_cache
    assert len(entra.token_requests) == 1


async def test_file_token_cache_is_private(entra: FakeEntra, make_app: MakeApp, tmp_path: Any) -> None:
    from s2s.entra import FileTokenCache

    path = tmp_path / "cache" / "msal.json"
    await make_app(token_cache=FileTokenCache(path)).for_client("api://downstream/.default")
    assert path.stat().st_mode & 0o777 == 0o600
    assert FileTokenCache(path).load() == path.read_text()


@pytest.mark.parametrize(
    "authority", ["http://127.0.0.1:1/tenant", "https://127.0.0.1:1", "https://127.0.0.1:1/"]
)
def test_authority_must_be_https_with_a_tenant(authority: str) -> None:
    with pytest.raises(ConfigError):
        EntraApp("t", "c", ClientSecret("s"), authority=authority)


def test_sovereign_cloud_authority() -> None:
    from s2s.entra import AZURE_US_GOVERNMENT

    app = EntraApp("contoso", "c", ClientSecret("s"), authority_host=AZURE_US_GOVERNMENT)
    assert app.authority == "https://login.microsoftonline.us/contoso"
    assert app.authorization_uri == "https://login.microsoftonline.us/contoso/oauth2/v2.0/authorize"


def test_config_from_env_needs_exactly_one_credential() -> None:
    base = {"S2S_ENTRA_TENANT_ID": "t", "S2S_ENTRA_CLIENT_ID": "c"}
    with pytest.raises(ConfigError):
        EntraConfig.from_env(environ=base)
    with pytest.raises(ConfigError):
        EntraConfig.from_env(environ={**base, "S2S_ENTRA_CLIENT_SECRET": "x", "S2S_ENTRA_PFX": "eA=="})
    config = EntraConfig.from_env(
        environ={**base, "S2S_ENTRA_CLIENT_SECRET": "Sekr1t-Val", "S2S_ENTRA_INSTANCE_DISCOVERY": "false"}
    )
    assert config.instance_discovery is False
    assert config.credential() == ClientSecret("Sekr1t-Val")
    assert "Sekr1t-Val" not in repr(config) and "Sekr1t-Val" not in repr(config.credential())
