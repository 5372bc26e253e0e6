"""Who may read the issuer's metrics: they list every client id and audience, which the token
endpoint hides. Without ``S2S_METRICS_TOKEN``, ``/metrics`` on the main port answers loopback
peers only (404 for the others); with it, the token is required everywhere; a metrics port bound
beyond loopback needs the token or the issuer does not start."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient

from s2s.cli import main
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import InMemoryClientRegistry
from s2s.observe import ObserveSettings
from tests.issuer.helpers import ISSUER, SECRET, basic
from tests.observe.conftest import make_app
from tests.support import free_port

TOKEN = "metrics-token-0123456789"
CC = {"grant_type": "client_credentials"}


class Peer:
    """The app as reached from ``host`` (Litestar's TestClient always reports "testclient")."""

    def __init__(self, app: Litestar, host: str) -> None:
        self.app, self.host = app, host

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (self.host, 40000)}
        await self.app(scope, receive, send)


def scrape_as(app: Litestar, host: str, **headers: str) -> httpx.Response:
    with TestClient(Peer(app, host), base_url=ISSUER) as tc:  # type: ignore[arg-type]
        # A token issued first: the client id is in the metrics if they are shown at all.
        assert tc.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", SECRET)}).is_success
        response: httpx.Response = tc.get("/metrics", headers=headers)
        return response


@pytest.mark.parametrize("host", ["203.0.113.7", "10.0.0.8", "2001:db8::1", "testclient", "localhost"])
def test_a_remote_peer_without_a_token_gets_404_and_no_client_id(
    registry: InMemoryClientRegistry, clock: FakeClock, host: str
) -> None:
    app = make_app(registry, clock, observe=ObserveSettings())
    response = scrape_as(app, host)
    assert response.status_code == 404
    assert "svc" not in response.text and "s2s_" not in response.text and "client_id" not in response.text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_a_loopback_peer_without_a_token_gets_the_metrics(
    registry: InMemoryClientRegistry, clock: FakeClock, host: str
) -> None:
    app = make_app(registry, clock, observe=ObserveSettings())
    response = scrape_as(app, host)
    assert response.status_code == 200 and 'client_id="svc"' in response.text


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_a_request_a_local_proxy_forwarded_is_not_local(
    registry: InMemoryClientRegistry, clock: FakeClock, header: str
) -> None:
    # nginx or a mesh sidecar on this host relays every caller from 127.0.0.1.
    app = make_app(registry, clock, observe=ObserveSettings())
    response = scrape_as(app, "127.0.0.1", **{header: "203.0.113.7"})
    assert response.status_code == 404 and "svc" not in response.text


def test_with_a_token_even_a_loopback_peer_must_send_it(
    registry: InMemoryClientRegistry, clock: FakeClock
) -> None:
    app = make_app(registry, clock, observe=ObserveSettings(metrics_token=TOKEN))
    refused = scrape_as(app, "127.0.0.1")
    assert refused.status_code == 401 and "svc" not in refused.text
    assert scrape_as(app, "203.0.113.7", Authorization=f"Bearer {TOKEN}x").status_code == 401
    ok = scrape_as(app, "203.0.113.7", Authorization=f"Bearer {TOKEN}")
    assert ok.status_code == 200 and 'client_id="svc"' in ok.text


def test_the_startup_log_says_how_to_expose_them(
    registry: InMemoryClientRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="s2s.issuer")
    with TestClient(make_app(registry, clock, observe=ObserveSettings()), base_url=ISSUER):
        pass
    hints = [r.getMessage() for r in caplog.records if "/metrics answers" in r.getMessage()]
    assert len(hints) == 1 and "S2S_METRICS_TOKEN" in hints[0] and "S2S_METRICS_PORT" in hints[0]
    caplog.clear()
    with TestClient(make_app(registry, clock, observe=ObserveSettings(metrics_token=TOKEN)), base_url=ISSUER):
        pass
    assert "/metrics answers" not in caplog.text


def test_the_metrics_port_asks_for_the_token_when_one_is_set(
    registry: InMemoryClientRegistry, clock: FakeClock
) -> None:
    port = free_port()
    observe = ObserveSettings(metrics_port=port, metrics_token=TOKEN)
    with TestClient(make_app(registry, clock, observe=observe), base_url=ISSUER) as tc:
        assert tc.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", SECRET)}).is_success
        url = f"http://127.0.0.1:{port}/metrics"
        refused = httpx.get(url, timeout=10, trust_env=False)
        assert refused.status_code == 401 and "svc" not in refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10, trust_env=False)
        assert wrong.status_code == 401
        ok = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10, trust_env=False)
        assert ok.status_code == 200 and 'client_id="svc"' in ok.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "metrics.internal"])
def test_a_metrics_port_beyond_loopback_without_a_token_is_refused(host: str) -> None:
    env = {"S2S_METRICS_PORT": "9464", "S2S_METRICS_HOST": host}
    with pytest.raises(ConfigError) as info:
        ObserveSettings.from_env(environ=env)
    message = str(info.value)
    assert "\n" not in message and "S2S_METRICS_HOST" in message and "S2S_METRICS_TOKEN" in message
    for loopback in ("127.0.0.1", "::1", "localhost"):
        assert ObserveSettings.from_env(environ={**env, "S2S_METRICS_HOST": loopback}).metrics_port == 9464
    with_token = ObserveSettings.from_env(environ={**env, "S2S_METRICS_TOKEN": TOKEN})
    assert with_token.metrics_host == host


@pytest.mark.timeout(120)  # before the fix it served: never wait for that
def test_s2s_serve_refuses_to_start_with_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("S2S_")]:
        monkeypatch.delenv(name)
    env = {"S2S_METRICS_PORT": str(free_port()), "S2S_METRICS_HOST": "0.0.0.0"}
    port = free_port()
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(main, ["serve", "--demo", "--port", str(port)], env=env)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("s2s: error: ")
    assert "S2S_METRICS_HOST" in result.stderr and "S2S_METRICS_TOKEN" in result.stderr
