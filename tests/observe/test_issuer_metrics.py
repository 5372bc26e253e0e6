"""Issuer metrics after real requests through the issuer app, in process (issue 14)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import InMemoryClientRegistry
from s2s.observe import ObserveSettings
from tests.issuer.helpers import AUDIENCE, ISSUER, SECRET, basic
from tests.observe.conftest import make_app
from tests.observe.helpers import sample, scrape
from tests.support import free_port

CC = {"grant_type": "client_credentials"}


def post(tc: TestClient[Litestar], authorization: str, form: dict[str, str] | None = None) -> httpx.Response:
    return tc.post("/oauth2/token", data=form or CC, headers={"Authorization": authorization})


def test_token_endpoint_counts_issued_refused_and_latency(client: TestClient[Litestar]) -> None:
    assert post(client, basic("svc", SECRET)).status_code == 200
    assert post(client, basic("svc", SECRET)).status_code == 200
    assert post(client, basic("svc", "wrong")).status_code == 401
    assert post(client, basic("nobody-registered", SECRET)).status_code == 401
    assert post(client, basic("svc", SECRET), {"grant_type": "password"}).status_code == 400
    response = scrape(client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "s2s_issuer_tokens_issued_total", client_id="svc", audience=AUDIENCE) == 2
    assert (
        sample(text, "s2s_issuer_token_refusals_total", error="invalid_client", reason="InvalidClient") == 2
    )
    assert (
        sample(
            text,
            "s2s_issuer_token_refusals_total",
            error="unsupported_grant_type",
            reason="UnsupportedGrantType",
        )
        == 1
    )
    assert (
        sample(text, "s2s_issuer_client_auth_failures_total", method="client_secret", reason="wrong_secret")
        == 1
    )
    assert (
        sample(text, "s2s_issuer_client_auth_failures_total", method="client_secret", reason="unknown_client")
        == 1
    )
    assert sample(text, "s2s_issuer_token_request_duration_seconds_count") == 5
    assert sample(text, "s2s_issuer_ready") == 1
    assert sample(text, "s2s_issuer_keyset_reloads_total") == 1
    assert (sample(text, "s2s_issuer_key_created_timestamp_seconds", state="current") or 0) > 0
    # A claimed client id never becomes a label value: only registered ones do.
    assert "nobody-registered" not in text


def test_key_times_follow_the_keyset_and_the_schedule(app: Litestar, client: TestClient[Litestar]) -> None:
    keys = app.state.s2s_issuer.keys
    keyset, policy = keys.keyset, keys.policy
    current, upcoming = keyset.current, keyset.next
    assert current is not None and upcoming is not None and current.activated_at is not None
    text = scrape(client).text
    assert sample(text, "s2s_issuer_key_activated_timestamp_seconds") == current.activated_at
    assert sample(text, "s2s_issuer_key_created_timestamp_seconds", state="next") == upcoming.created_at
    # When the schedule promotes the next key: its own period, but never before the next key
    # has been published for publish_lead (a fresh keyset: the later of the two).
    due = max(current.activated_at + policy.rotate_every, upcoming.created_at + policy.publish_lead)
    assert sample(text, "s2s_issuer_rotation_due_timestamp_seconds") == due
    assert sample(text, "s2s_issuer_keyset_loaded_timestamp_seconds") == keys.loaded_at


def test_rate_limited_requests_are_counted_by_budget(
    registry: InMemoryClientRegistry, clock: FakeClock
) -> None:
    app = make_app(registry, clock, rate=1, burst=1)
    with TestClient(app, base_url=ISSUER) as tc:
        assert post(tc, basic("svc", SECRET)).status_code == 200
        assert post(tc, basic("svc", SECRET)).status_code == 429
        text = scrape(tc).text
    assert sample(text, "s2s_issuer_rate_limited_total", budget="issuance") == 1
    assert sample(text, "s2s_issuer_token_refusals_total", error="slow_down", reason="SlowDown") == 1


def test_each_app_counts_in_its_own_registry(registry: InMemoryClientRegistry, clock: FakeClock) -> None:
    first, second = make_app(registry, clock), make_app(registry, clock)
    with TestClient(first, base_url=ISSUER) as a, TestClient(second, base_url=ISSUER) as b:
        assert post(a, basic("svc", SECRET)).status_code == 200
        assert (
            sample(scrape(a).text, "s2s_issuer_tokens_issued_total", client_id="svc", audience=AUDIENCE) == 1
        )
        assert (
            sample(scrape(b).text, "s2s_issuer_tokens_issued_total", client_id="svc", audience=AUDIENCE)
            is None
        )


def test_metrics_behind_a_bearer_token(registry: InMemoryClientRegistry, clock: FakeClock) -> None:
    token = "metrics-token-0123456789"
    app = make_app(registry, clock, observe=ObserveSettings(metrics_token=token))
    with TestClient(app, base_url=ISSUER) as tc:
        refused = tc.get("/metrics")
        assert refused.status_code == 401 and "s2s_" not in refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert (
            tc.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        )
        ok = tc.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "s2s_issuer_ready" in ok.text


def test_metrics_on_their_own_port(registry: InMemoryClientRegistry, clock: FakeClock) -> None:
    port = free_port()
    app = make_app(registry, clock, observe=ObserveSettings(metrics_port=port))
    with TestClient(app, base_url=ISSUER) as tc:
        assert post(tc, basic("svc", SECRET)).status_code == 200
        assert tc.get("/metrics").status_code == 404  # not on the port token callers use
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10, trust_env=False).text
        assert sample(text, "s2s_issuer_tokens_issued_total", client_id="svc", audience=AUDIENCE) == 1
    with pytest.raises(httpx.TransportError):  # stopped with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2, trust_env=False)


def test_metrics_can_be_switched_off(registry: InMemoryClientRegistry, clock: FakeClock) -> None:
    app = make_app(registry, clock, observe=ObserveSettings(metrics=False))
    with TestClient(app, base_url=ISSUER) as tc:
        assert post(tc, basic("svc", SECRET)).status_code == 200
        assert tc.get("/metrics").status_code == 404


def test_settings_from_env_name_every_bad_variable() -> None:
    env = {"S2S_METRICS_PORT": "http", "S2S_OTEL": "maybe"}
    with pytest.raises(ConfigError, match=r"S2S_METRICS_PORT.*S2S_OTEL"):
        ObserveSettings.from_env(environ=env)
    parsed = ObserveSettings.from_env(environ={"S2S_METRICS_PORT": "9464", "S2S_METRICS": "true"})
    assert parsed.metrics_port == 9464 and parsed.metrics_host == "127.0.0.1"


def test_the_core_imports_neither_prometheus_nor_opentelemetry() -> None:
    core = ("s2s.keys", "s2s.issuer", "s2s.verify", "s2s.client", "s2s.entra", "s2s.observe", "s2s.cli")
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prometheus_client', 'opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_failed_federated_authentication_is_counted_as_such(clock: FakeClock) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from s2s.issuer import Client, FederatedCredential

    credential = FederatedCredential(
        issuer="https://idp.example", subject="svc-1", jwks_url="https://idp.example/jwks"
    )
    registry = InMemoryClientRegistry(
        [Client(client_id="fed", audiences=(AUDIENCE,), federated=(credential,))]
    )
    app = make_app(registry, clock)
    now = int(clock.now())
    claims = {"iss": "https://elsewhere.example", "sub": "svc-1", "aud": ISSUER, "iat": now, "exp": now + 60}
    external = jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "k"}
    )
    form = {
        **CC,
        "client_id": "fed",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": external,
    }
    with TestClient(app, base_url=ISSUER) as tc:
        assert tc.post("/oauth2/token", data=form).status_code == 401
        text = scrape(tc).text
    labels = {"method": "federated", "reason": "untrusted_issuer"}
    assert sample(text, "s2s_issuer_client_auth_failures_total", **labels) == 1
