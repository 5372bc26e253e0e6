"""Client credentials never travel over plain http unless the caller opts in (issue 9, item 9).

The rule is the verifier's: https, or http to a loopback address; anything else needs an explicit
``allow_insecure_http`` (a mesh sidecar that adds TLS), which is logged once.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from click.testing import CliRunner

from s2s.cli import main
from s2s.client import AsyncTokenClient, TokenClient, TokenClientSettings
from s2s.client.errors import DiscoveryError
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from tests.client.helpers import SECRET, FakeTokenEndpoint

PLAIN = "http://issuer.example.com/oauth2/token"


@pytest.mark.parametrize("kind", [TokenClient, AsyncTokenClient])
@pytest.mark.parametrize(
    "where",
    [
        {"token_endpoint": PLAIN},
        {"issuer": "http://issuer.example.com"},
        {"token_endpoint": "http://10.0.0.7/t"},
    ],
    ids=["endpoint", "issuer", "private-address"],
)
def test_plain_http_to_another_host_is_refused(kind: type, where: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="must use https") as info:
        kind(client_id="svc", client_secret=SECRET, **where)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/oauth2/token", "http://localhost/t", "http://[::1]/t"]
)
def test_plain_http_to_loopback_is_fine(url: str) -> None:
    TokenClient(url, client_id="svc", client_secret=SECRET)


def test_opting_in_is_explicit_and_logged_once(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = FakeTokenEndpoint()
    caplog.set_level(logging.WARNING, "s2s.http")
    url = "http://sidecar.mesh.internal/oauth2/token"
    for _ in range(3):
        client = TokenClient(
            url,
            client_id="svc",
            client_secret=SECRET,
            transport=httpx.MockTransport(endpoint),
            clock=clock,
            allow_insecure_http=True,
        )
        assert client.get_token("https://orders.internal").token
    warnings = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1 and url in warnings[0]
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_the_setting_opts_in_from_the_environment() -> None:
    env = {"S2S_TOKEN_ENDPOINT": PLAIN, "S2S_CLIENT_ID": "svc", "S2S_CLIENT_SECRET": SECRET}
    with pytest.raises(ConfigError, match="must use https"):
        TokenClient.from_settings(TokenClientSettings.from_env(environ=env))
    settings = TokenClientSettings.from_env(environ={**env, "S2S_ALLOW_INSECURE_HTTP": "true"})
    assert settings.allow_insecure_http
    TokenClient.from_settings(settings)


def test_discovery_over_https_cannot_send_credentials_to_plain_http(clock: FakeClock) -> None:
    def metadata(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/.well-known/oauth-authorization-server"
        # A tampered or misconfigured document: the token endpoint is plain http on this host.
        return httpx.Response(
            200, json={"issuer": "https://issuer.test", "token_endpoint": "http://127.0.0.1:6379/token"}
        )

    client = TokenClient(
        issuer="https://issuer.test",
        client_id="svc",
        client_secret=SECRET,
        transport=httpx.MockTransport(metadata),
        clock=clock,
    )
    with pytest.raises(DiscoveryError, match="must use https"):
        client.get_token("https://orders.internal")


def test_s2s_token_refuses_plain_http_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_CLIENT_SECRET", SECRET)
    result = CliRunner().invoke(
        main, ["token", "--issuer", "http://issuer.example.com", "--client-id", "svc"]
    )
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("s2s: error:") and "https" in lines[0]
    assert SECRET not in result.output
