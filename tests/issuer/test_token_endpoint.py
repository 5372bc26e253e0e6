"""Every token-endpoint path through the Litestar app: refusals are RFC 6749 JSON and leak nothing."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.issuer import Client as ClientRecord
from s2s.issuer import IssuerSettings
from s2s.litestar.issuer import IssuerRuntime
from tests.issuer.helpers import (
    AUDIENCE,
    FORM,
    ISSUER,
    LEGACY_HASH,
    OTHER_AUDIENCE,
    SECRET,
    PkjClient,
    assert_no_leak,
    assert_refused,
    basic,
    make_assertion,
)
from tests.support import MemoryKeyStore

Client = TestClient[Litestar]
CC = {"grant_type": "client_credentials"}


def post(client: Client, form: dict[str, Any] | list[tuple[str, str]] | str | bytes, **headers: str) -> Any:
    body = form if isinstance(form, str | bytes) else urlencode(form)
    hdrs = {"content-type": FORM, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return client.post("/oauth2/token", content=body, headers=hdrs)


def verify_with_pyjwt(client: Client, token: str, audience: str = AUDIENCE) -> dict[str, Any]:
    jwks = client.get("/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["ES256"],
        audience=audience,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    return claims


# -- success -------------------------------------------------------------------------------------


def test_basic_auth_issues_rfc9068_token(
    client: Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    response = post(client, {**CC, "scope": "orders:read"}, authorization=basic("svc", SECRET))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert body["scope"] == "orders:read"
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = verify_with_pyjwt(client, token)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == claims["client_id"] == "svc"
    assert claims["aud"] == AUDIENCE
    assert claims["scope"] == "orders:read"
    assert claims["iat"] == int(clock.now())
    assert claims["exp"] == claims["iat"] + 1800
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert claims["roles"] == ["reader"]
    assert claims["permissions"] == ["orders.list"]
    assert claims["features"] == ["beta"]
    assert header["kid"] in {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    # Even a successful request leaves no secret or token in the logs.
    assert SECRET not in caplog.text and token not in caplog.text


def test_client_secret_post_and_defaults(client: Client) -> None:
    response = post(client, {**CC, "client_id": "svc", "client_secret": SECRET})
    assert response.status_code == 200, response.text
    body = response.json()
    # No scope requested: the client's allowed scopes (RFC 6749 §3.3 default); its only audience.
    assert body["scope"] == "orders:read orders:write"
    assert verify_with_pyjwt(client, body["access_token"])["aud"] == AUDIENCE


def test_resource_indicator_and_per_client_ttl_cap(client: Client) -> None:
    response = post(client, {**CC, "resource": OTHER_AUDIENCE}, authorization=basic("multi", SECRET))
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 60
    claims = verify_with_pyjwt(client, response.json()["access_token"], OTHER_AUDIENCE)
    assert claims["exp"] - claims["iat"] == 60
    assert "roles" not in claims


def test_basic_credentials_are_form_urlencoded(client: Client) -> None:
    # RFC 6749 §2.3.1: "svc" percent-encoded is still "svc"; the decoder must undo the encoding.
    response = post(client, CC, authorization=basic("%73vc", SECRET))
    assert response.status_code == 200, response.text


def test_each_token_is_unique(client: Client) -> None:
    tokens = {post(client, CC, authorization=basic("svc", SECRET)).json()["access_token"] for _ in range(3)}
    assert len(tokens) == 3


# -- refusals ------------------------------------------------------------------------------------

REFUSALS: list[tuple[str, Any, dict[str, str], int, str]] = [
    ("no grant_type", {}, {"authorization": basic("svc", SECRET)}, 400, "invalid_request"),
    (
        "password grant",
        {"grant_type": "password"},
        {"authorization": basic("svc", SECRET)},
        400,
        "unsupported_grant_type",
    ),
    (
        "repeated grant_type",
        [("grant_type", "client_credentials")] * 2,
        {"authorization": basic("svc", SECRET)},
        400,
        "invalid_request",
    ),
    (
        "repeated scope",
        [*CC.items(), ("scope", "orders:read"), ("scope", "orders:write")],
        {"authorization": basic("svc", SECRET)},
        400,
        "invalid_request",
    ),
    ("no client auth", CC, {}, 401, "invalid_client"),
    ("wrong secret", CC, {"authorization": basic("svc", SECRET + "x")}, 401, "invalid_client"),
    ("unknown client", CC, {"authorization": basic("nobody", SECRET)}, 401, "invalid_client"),
    (
        "basic and post",
        {**CC, "client_id": "svc", "client_secret": SECRET},
        {"authorization": basic("svc", SECRET)},
        400,
        "invalid_request",
    ),
    ("post without client_id", {**CC, "client_secret": SECRET}, {}, 400, "invalid_request"),
    ("bearer scheme", CC, {"authorization": f"Bearer {SECRET}"}, 401, "invalid_client"),
    ("basic not base64", CC, {"authorization": "Basic !!!" + SECRET}, 401, "invalid_client"),
    ("basic without colon", CC, {"authorization": "Basic c3Zj"}, 401, "invalid_client"),
    (
        "basic id differs from form",
        {**CC, "client_id": "multi"},
        {"authorization": basic("svc", SECRET)},
        400,
        "invalid_request",
    ),
    (
        "audience not allowed",
        {**CC, "audience": OTHER_AUDIENCE},
        {"authorization": basic("svc", SECRET)},
        400,
        "invalid_target",
    ),
    (
        "relative resource",
        {**CC, "resource": "/orders"},
        {"authorization": basic("svc", SECRET)},
        400,
        "invalid_target",
    ),
    (
        "resource with fragment",
        {**CC, "resource": AUDIENCE + "#x"},
        {"authorization": basic("svc", SECRET)},
        400,
        "invalid_target",
    ),
    ("several audiences, none chosen", CC, {"authorization": basic("multi", SECRET)}, 400, "invalid_target"),
    (
        "audience and resource differ",
        {**CC, "audience": AUDIENCE, "resource": OTHER_AUDIENCE},
        {"authorization": basic("multi", SECRET)},
        400,
        "invalid_request",
    ),
    (
        "scope not allowed",
        {**CC, "scope": "orders:read admin"},
        {"authorization": basic("svc", SECRET)},
        400,
        "invalid_scope",
    ),
    (
        "scope malformed",
        {**CC, "scope": 'orders:read "x'},
        {"authorization": basic("svc", SECRET)},
        400,
        "invalid_scope",
    ),
    (
        "secret for a private_key_jwt client",
        CC,
        {"authorization": basic("pkj", SECRET)},
        401,
        "invalid_client",
    ),
    (
        "assertion for a secret client",
        {
            **CC,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "a.b.c",
            "client_id": "svc",
        },
        {},
        401,
        "invalid_client",
    ),
    ("assertion without type", {**CC, "client_assertion": "a.b.c"}, {}, 400, "invalid_request"),
    (
        "wrong assertion type",
        {**CC, "client_assertion_type": "urn:x", "client_assertion": "a.b.c"},
        {},
        401,
        "invalid_client",
    ),
    (
        "type without assertion",
        {**CC, "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
        {},
        400,
        "invalid_request",
    ),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals(
    client: Client, caplog: pytest.LogCaptureFixture, case: tuple[str, Any, dict[str, str], int, str]
) -> None:
    _, form, headers, status, error = case
    response = post(client, form, **headers)
    assert_refused(response, status, error, caplog, SECRET)
    assert "access_token" not in response.text


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", json.dumps({**CC, "client_id": "svc", "client_secret": SECRET}).encode()),
        ("text/plain", urlencode({**CC, "client_id": "svc", "client_secret": SECRET}).encode()),
        (f"{FORM}; charset=latin-1", urlencode({**CC, "client_id": "svc", "client_secret": SECRET}).encode()),
        (FORM, b"grant_type=client_credentials&client_id=svc&client_secret=\xff\xfe" + SECRET.encode()),
        (FORM, b"grant_type=client_credentials&client_id=svc&client_secret=%ff%fe" + SECRET.encode()),
        (FORM, b"client_secret=" + SECRET.encode() + b"&" + b"x=" + b"a" * 20_000),
        (FORM, b"&".join(b"f%d=1" % i for i in range(100)) + b"&client_secret=" + SECRET.encode()),
    ],
    ids=["json", "text", "latin1", "raw-invalid-utf8", "pct-invalid-utf8", "too-large", "too-many-fields"],
)
def test_malformed_bodies(
    client: Client, caplog: pytest.LogCaptureFixture, content_type: str, body: bytes
) -> None:
    response = client.post("/oauth2/token", content=body, headers={"content-type": content_type})
    assert_refused(response, 400, "invalid_request", caplog, SECRET)


def test_missing_content_type(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    response = client.post("/oauth2/token", content=b"grant_type=client_credentials")
    assert_refused(response, 400, "invalid_request", caplog)


def test_two_authorization_headers(
    app: Litestar, runtime: IssuerRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    # Test clients merge repeated headers, so this one speaks ASGI directly.
    import asyncio

    import httpx

    runtime.keys.refresh()
    body = urlencode(CC).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/oauth2/token",
        "raw_path": b"/oauth2/token",
        "root_path": "",
        "query_string": b"",
        "server": ("issuer.test", 443),
        "client": ("127.0.0.1", 1234),
        "headers": [
            (b"content-type", FORM.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", basic("svc", SECRET).encode()),
            (b"authorization", basic("multi", SECRET).encode()),
        ],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    start = sent[0]
    response = httpx.Response(
        start["status"],
        headers=[(k.decode(), v.decode()) for k, v in start["headers"]],
        content=b"".join(m.get("body", b"") for m in sent[1:]),
    )
    assert_refused(response, 400, "invalid_request", caplog, SECRET)


def test_get_is_refused_as_oauth_json(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    response = client.get("/oauth2/token", params={**CC, "client_id": "svc", "client_secret": SECRET})
    assert_refused(response, 405, "invalid_request", caplog, SECRET)
    assert response.headers["allow"] == "POST"


def test_no_keys_gives_503_not_500(
    settings: IssuerSettings, registry: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from s2s.litestar.issuer import create_issuer_app

    store = MemoryKeyStore()
    store.fail = True
    app = create_issuer_app(settings, store=store, registry=registry, clock=clock, reload_loop=False)
    with TestClient(app, base_url=ISSUER) as tc:
        assert tc.get("/ready").status_code == 503
        assert tc.get("/health").status_code == 200
        assert tc.get("/.well-known/jwks.json").status_code == 503
        response = post(tc, CC, authorization=basic("svc", SECRET))
        body = assert_refused(response, 503, "temporarily_unavailable", caplog, SECRET)
        assert body["error_description"]
        store.fail = False
        runtime: IssuerRuntime = app.state.s2s_issuer
        assert runtime.keys.refresh()
        assert tc.get("/ready").status_code == 200
        assert post(tc, CC, authorization=basic("svc", SECRET)).status_code == 200


def test_signer_fault_is_a_bare_500(
    settings: IssuerSettings, registry: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from s2s.litestar.issuer import create_issuer_app

    class BrokenSigner:
        def sign(self, key: Any, header: Any, claims: Any) -> str:
            raise RuntimeError(f"hsm exploded near {SECRET}")

    app = create_issuer_app(
        settings,
        store=MemoryKeyStore(),
        registry=registry,
        clock=clock,
        signer=BrokenSigner(),
        reload_loop=False,
    )
    with TestClient(app, base_url=ISSUER) as tc:
        response = post(tc, CC, authorization=basic("svc", SECRET))
        assert_refused(response, 500, "server_error", caplog, SECRET)
        assert "exploded" not in response.text and "Traceback" not in response.text
        assert "exploded" not in caplog.text


def test_rate_limit_gives_429_with_retry_after(
    settings: IssuerSettings, registry: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import replace

    from s2s.litestar.issuer import create_issuer_app

    limited = replace(settings, rate_limit=1, rate_burst=2)
    app = create_issuer_app(
        limited, store=MemoryKeyStore(), registry=registry, clock=clock, reload_loop=False
    )
    with TestClient(app, base_url=ISSUER) as tc:
        assert post(tc, CC, authorization=basic("svc", SECRET)).status_code == 200
        assert post(tc, CC, authorization=basic("svc", SECRET)).status_code == 200
        response = post(tc, CC, authorization=basic("svc", SECRET))
        assert_refused(response, 429, "slow_down", caplog, SECRET)
        assert response.headers["retry-after"] == "1"
        # Another client has its own bucket.
        assert post(tc, {**CC, "audience": AUDIENCE}, authorization=basic("multi", SECRET)).status_code == 200
        # Wrong secrets never spend the client's bucket (anyone could lock it out): they are
        # charged to the failure budget of (client id, source address).
        clock.advance(1)
        assert post(tc, CC, authorization=basic("svc", "wrong")).status_code == 401
        assert post(tc, CC, authorization=basic("svc", SECRET)).status_code == 200


def test_metrics_count_tokens_and_errors(settings: IssuerSettings, registry: Any, clock: FakeClock) -> None:
    from s2s.litestar.issuer import create_issuer_app
    from s2s.observe import ObserveSettings

    # A metrics token: TestClient's peer ("testclient") is not loopback, the only peers served without.
    token = "metrics-token-0123456789"
    observe = ObserveSettings(metrics_token=token)
    app = create_issuer_app(
        settings, store=MemoryKeyStore(), registry=registry, clock=clock, reload_loop=False, observe=observe
    )
    with TestClient(app, base_url=ISSUER) as client:
        post(client, CC, authorization=basic("svc", SECRET))
        post(client, CC, authorization=basic("svc", "nope"))
        post(client, {"grant_type": "password"}, authorization=basic("svc", SECRET))
        text = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert 's2s_issuer_tokens_issued_total{audience="https://orders.internal",client_id="svc"} 1.0\n' in text
    assert 's2s_issuer_token_refusals_total{error="invalid_client",reason="InvalidClient"} 1.0\n' in text
    assert 'error="unsupported_grant_type",reason="UnsupportedGrantType"} 1.0\n' in text
    assert "s2s_issuer_ready 1.0\n" in text


def test_legacy_secret_check_is_cached_per_secret(
    client: Client, runtime: IssuerRuntime, clock: FakeClock, registry: Any
) -> None:
    # An scrypt hash of an earlier version (the in-memory registry cannot be upgraded).
    registry.put(
        ClientRecord(client_id="svc", audiences=(AUDIENCE,), scopes=("orders:read",), secret_hash=LEGACY_HASH)
    )
    calls = []
    verifier = runtime.endpoint.secrets
    original = verifier.verify_slow

    def counting(c: Any, s: str) -> bool:
        calls.append(c.client_id)
        return original(c, s)

    verifier.verify_slow = counting  # type: ignore[method-assign]
    for _ in range(3):
        assert post(client, CC, authorization=basic("svc", SECRET)).status_code == 200
    assert calls == ["svc"]
    # A wrong secret never hits the cache of the right one.
    assert post(client, CC, authorization=basic("svc", SECRET[:-1])).status_code == 401
    assert calls == ["svc", "svc"]
    clock.advance(301)
    assert post(client, CC, authorization=basic("svc", SECRET)).status_code == 200
    assert calls == ["svc", "svc", "svc"]


def test_health_and_metadata(client: Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        response = client.get(path)
        assert response.status_code == 200
        meta = response.json()
        assert meta["issuer"] == ISSUER
        assert meta["token_endpoint"] == f"{ISSUER}/oauth2/token"
        assert meta["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
        assert meta["grant_types_supported"] == ["client_credentials"]
        assert set(meta["token_endpoint_auth_methods_supported"]) == {
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        }
        algs = set(meta["token_endpoint_auth_signing_alg_values_supported"])
        assert "ES256" in algs and not any(a.startswith("HS") or a == "none" for a in algs)
        assert response.headers["cache-control"].startswith("public, max-age=")


def test_private_key_jwt_through_http(client: Client, pkj: PkjClient, clock: FakeClock) -> None:
    assertion = make_assertion(pkj, now=clock.now())
    form = {
        **CC,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    response = post(client, form)
    assert response.status_code == 200, response.text
    assert verify_with_pyjwt(client, response.json()["access_token"])["sub"] == "pkj"


def test_no_leak_on_success_headers(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    response = post(client, CC, authorization=basic("svc", SECRET))
    assert response.status_code == 200
    assert_no_leak(response, caplog, SECRET)
