"""TokenClientSettings.from_env goes through the one settings reader."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from s2s.client import TokenClient, TokenClientSettings
from s2s.errors import ConfigError
from s2s.secrets import SecretsManagerSource
from tests.client.helpers import SECRET, TOKEN_URL, FakeTokenEndpoint


def test_every_missing_setting_is_named_in_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        TokenClientSettings.from_env(environ={})
    assert str(info.value) == (
        "missing settings: S2S_CLIENT_ID, S2S_TOKEN_ENDPOINT or S2S_ISSUER, "
        "S2S_CLIENT_SECRET or S2S_CLIENT_PRIVATE_KEY or S2S_CLIENT_ASSERTION_FILE"
    )


def test_conflicting_credentials_name_both_variables() -> None:
    env = {"S2S_CLIENT_ID": "svc", "S2S_ISSUER": "https://i.example", "S2S_CLIENT_SECRET": "s"}
    with pytest.raises(ConfigError, match=r"^S2S_CLIENT_SECRET and S2S_CLIENT_PRIVATE_KEY are alternatives"):
        TokenClientSettings.from_env(environ={**env, "S2S_CLIENT_PRIVATE_KEY": "/k.pem"})
    with pytest.raises(ConfigError, match=r"^S2S_TOKEN_TIMEOUT='soon' must be a duration"):
        TokenClientSettings.from_env(environ={**env, "S2S_TOKEN_TIMEOUT": "soon"})
    assert TokenClientSettings.from_env(environ={**env, "S2S_TOKEN_TIMEOUT": "1500ms"}).timeout == 1.5


def test_from_env_resolves_references_with_the_given_source(sm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sm.create_secret(Name="svc/creds", SecretString=SECRET)
    monkeypatch.setenv("APP_CLIENT_ID", "svc")
    monkeypatch.setenv("APP_TOKEN_ENDPOINT", TOKEN_URL)
    monkeypatch.setenv("APP_CLIENT_SECRET", "aws-sm://svc/creds")
    endpoint = FakeTokenEndpoint()
    client = TokenClient.from_env(
        "APP_", secret_source=SecretsManagerSource(sm), transport=httpx.MockTransport(endpoint)
    )
    client.get_token("https://orders.internal")
    assert endpoint.requests[0].headers["authorization"] == httpx.BasicAuth("svc", SECRET)._auth_header
