"""Verifier, plugin and token-client metrics after real requests (issue 14)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from s2s.client import TokenClient
from s2s.clock import FakeClock
from s2s.keys import KeyState, LocalSigner, SigningKey, generate_key
from s2s.litestar import PrincipalDep, S2SAuthPlugin
from s2s.observe import subscribe, unsubscribe
from s2s.observe.litestar import default_metrics, metrics_route
from s2s.observe.prometheus import PrometheusObserver
from s2s.verify import TokenVerifier, VerifierConfig
from tests.observe.helpers import sample

ISSUER = "https://issuer.test"
AUDIENCE = "orders-api"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"


@pytest.fixture
def key(clock: FakeClock) -> SigningKey:
    return generate_key("ES256", now=clock.now(), state=KeyState.CURRENT)


def mint(key: SigningKey, clock: FakeClock, **claims: Any) -> str:
    now = int(clock.now())
    body = {
        "iss": ISSUER,
        "sub": "billing",
        "aud": AUDIENCE,
        "client_id": "billing",
        "iat": now,
        "exp": now + 300,
    }
    body.update(claims)
    return LocalSigner().sign(key, {"typ": "at+jwt"}, body)


def jwks_client(key: SigningKey, fail: list[bool]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if fail[0]:
            return httpx.Response(503)
        body = {"keys": [key.public_jwk_entry()]}
        return httpx.Response(200, json=body, headers={"Cache-Control": "max-age=600"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@get("/orders")
async def orders(principal: PrincipalDep) -> dict[str, str]:
    return {"subject": principal.subject}


def test_plugin_app_counts_verifications_by_result_and_cache(key: SigningKey, clock: FakeClock) -> None:
    metrics = PrometheusObserver()
    fail = [False]
    verifier = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        http_client=jwks_client(key, fail),
        clock=clock,
        observer=metrics,
    )
    plugin = S2SAuthPlugin(verifier)
    app = Litestar(
        [orders, metrics_route(observer=metrics, watch=[verifier])], plugins=[plugin], logging_config=None
    )
    token = mint(key, clock)
    other = generate_key("ES256", now=clock.now(), state=KeyState.CURRENT)
    with TestClient(app) as tc:
        for _ in range(3):  # seen once, cached on the second sight, served from the cache after
            assert tc.get("/orders", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert (
            tc.get("/orders", headers={"Authorization": f"Bearer {mint(key, clock, aud='x')}"}).status_code
            == 401
        )
        unknown = mint(other, clock)
        assert tc.get("/orders", headers={"Authorization": f"Bearer {unknown}"}).status_code == 401
        assert tc.get("/orders", headers={"Authorization": "Bearer not.a.token"}).status_code == 401
        response = tc.get("/metrics")  # excluded from the bearer check: a scraper has no token
        assert response.status_code == 200
        text = response.text
    # Two ran the checks, the third came from the cache (one increment on that path).
    assert sample(text, "s2s_verifier_verifications_total", issuer=ISSUER, result="ok") == 2
    assert sample(text, "s2s_verifier_cache_hits_total", issuer=ISSUER) == 1
    assert sample(text, "s2s_verifier_cache_misses_total", issuer=ISSUER) == 4
    assert sample(text, "s2s_verifier_verifications_total", issuer=ISSUER, result="InvalidAudience") == 1
    assert sample(text, "s2s_verifier_verifications_total", issuer=ISSUER, result="UnknownKey") == 1
    assert sample(text, "s2s_verifier_verifications_total", issuer="-", result="MalformedToken") == 1
    assert sample(text, "s2s_verifier_jwks_unknown_kid_total", issuer=ISSUER) == 1
    assert (sample(text, "s2s_verifier_jwks_fetches_total", issuer=ISSUER, result="ok") or 0) >= 1
    assert (sample(text, "s2s_verifier_jwks_fetched_timestamp_seconds", issuer=ISSUER) or 0) > 0
    assert sample(text, "s2s_verifier_jwks_stale", issuer=ISSUER) == 0
    assert sample(text, "s2s_verifier_jwks_age_seconds", issuer=ISSUER) is not None
    assert sample(text, "s2s_verifier_cache_size") == 1
    assert token not in text and "not.a.token" not in text


def test_jwks_failures_and_staleness_are_visible(key: SigningKey, clock: FakeClock) -> None:
    metrics = PrometheusObserver()
    fail = [True]
    verifier = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        http_client=jwks_client(key, fail),
        clock=clock,
        observer=metrics,
    )
    app = Litestar(
        [orders, metrics_route(observer=metrics, watch=[verifier])],
        plugins=[S2SAuthPlugin(verifier)],
        logging_config=None,
    )
    with TestClient(app) as tc:
        response = tc.get("/orders", headers={"Authorization": f"Bearer {mint(key, clock)}"})
        assert response.status_code == 503
        text = tc.get("/metrics").text
    assert (sample(text, "s2s_verifier_jwks_fetches_total", issuer=ISSUER, result="failed") or 0) >= 1
    assert sample(text, "s2s_verifier_jwks_stale", issuer=ISSUER) == 1
    assert sample(text, "s2s_verifier_verifications_total", issuer=ISSUER, result="KeysUnavailable") == 1


def test_plugin_mounts_the_process_metrics_in_one_line(key: SigningKey, clock: FakeClock) -> None:
    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=jwks_client(key, [False]), clock=clock
    )
    app = Litestar([orders, plugin.metrics_route()], plugins=[plugin], logging_config=None)
    before = sample(
        default_metrics().render()[0].decode(), "s2s_verifier_verifications_total", issuer=ISSUER, result="ok"
    )
    with TestClient(app) as tc:
        assert tc.get("/orders", headers={"Authorization": f"Bearer {mint(key, clock)}"}).status_code == 200
        text = tc.get("/metrics").text
    assert sample(text, "s2s_verifier_verifications_total", issuer=ISSUER, result="ok") == (before or 0) + 1
    assert sample(text, "s2s_verifier_jwks_stale", issuer=ISSUER) == 0


@pytest.fixture
def hub_metrics() -> Iterator[PrometheusObserver]:
    metrics = PrometheusObserver()
    subscribe(metrics)
    yield metrics
    unsubscribe(metrics)


def test_token_client_counts_requests_cache_hits_and_retries(
    hub_metrics: PrometheusObserver, clock: FakeClock
) -> None:
    answers = [httpx.Response(503, headers={"Retry-After": "0"})]

    def handler(request: httpx.Request) -> httpx.Response:
        if answers:
            return answers.pop()
        body = {"access_token": "opaque-token-value", "token_type": "Bearer", "expires_in": 3600}
        return httpx.Response(200, content=json.dumps(body), headers={"Content-Type": "application/json"})

    client = TokenClient(
        "https://issuer.test/oauth2/token",
        client_id="caller",
        client_secret="caller-secret-0123456789",
        transport=httpx.MockTransport(handler),
        clock=clock,
        sleep=lambda _: None,
    )
    with client:
        token = client.get_token(AUDIENCE)
        assert client.get_token(AUDIENCE) is token
    text = hub_metrics.render()[0].decode()
    assert sample(text, "s2s_client_requests_total", client_id="caller", outcome="error") == 1
    assert sample(text, "s2s_client_requests_total", client_id="caller", outcome="ok") == 1
    assert sample(text, "s2s_client_retries_total", client_id="caller") == 1
    assert sample(text, "s2s_client_tokens_total", client_id="caller", outcome="fetched") == 1
    assert sample(text, "s2s_client_tokens_total", client_id="caller", outcome="cache") == 1
    assert "opaque-token-value" not in text and "caller-secret" not in text
