from __future__ import annotations

import pytest

from s2s.errors import ConfigError
from s2s.issuer import IssuerSettings


def test_defaults_from_empty_env() -> None:
    s = IssuerSettings.from_env(environ={})
    assert s.issuer == "http://127.0.0.1:8000"
    assert s.keystore == "file://keys" and s.clients == "file://keys/clients.json"
    assert s.token_ttl == 300 and s.jwks_max_age == 300 and s.poll_interval == 30
    assert s.token_endpoint == "http://127.0.0.1:8000/oauth2/token"
    assert s.jwks_uri == "http://127.0.0.1:8000/.well-known/jwks.json"


def test_env_overrides_and_rotation_timing_is_shared() -> None:
    env = {
        "S2S_ISSUER": "https://issuer.example/",
        "S2S_TOKEN_TTL": "120",
        "S2S_JWKS_MAX_AGE": "60",
        "S2S_POLL_INTERVAL": "10",
        "S2S_RUN_ROTATION": "false",
        "S2S_RATE_LIMIT": "5",
        "S2S_PORT": "9000",
    }
    s = IssuerSettings.from_env(environ=env)
    assert s.issuer == "https://issuer.example"
    assert s.token_ttl == 120 and not s.run_rotation and s.rate_limit == 5 and s.port == 9000
    # The served max-age and the poll interval are the rotation policy's: they cannot disagree.
    assert s.jwks_max_age == s.rotation.jwks_max_age == 60
    assert s.poll_interval == s.rotation.poll_interval == 10


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"S2S_ISSUER": "ftp://x"}, "issuer"),
        ({"S2S_ISSUER": "https://x/?q=1"}, "issuer"),
        ({"S2S_TOKEN_TTL": "abc"}, "S2S_TOKEN_TTL"),
        ({"S2S_TOKEN_TTL": "7200"}, "max_token_ttl"),
        ({"S2S_RUN_ROTATION": "maybe"}, "S2S_RUN_ROTATION"),
        ({"S2S_PORT": "70000"}, "port"),
        ({"S2S_PORT": "80.5"}, "integers"),
        ({"S2S_RATE_LIMIT": "0"}, "rate_limit"),
        ({"S2S_POLL_INTERVAL": "0"}, "poll_interval"),
    ],
)
def test_invalid_settings_say_what_is_wrong(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        IssuerSettings.from_env(environ=env)
    assert fragment in str(info.value)
