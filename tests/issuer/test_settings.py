from __future__ import annotations

import pytest

from s2s.errors import ConfigError
from s2s.issuer import IssuerSettings


def test_defaults_from_empty_env() -> None:
    s = IssuerSettings.from_env(environ={})
    assert s.issuer == "http://127.0.0.1:8000"
    assert s.keystore == "file://keys" and s.clients == "file://keys/clients.json"
    assert s.token_ttl == 1800 and s.jwks_max_age == 300 and s.poll_interval == 30
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
        ({"S2S_PORT": "70000"}, "S2S_PORT must be between 1 and 65535, not 70000"),
        ({"S2S_PORT": "80.5"}, "S2S_PORT='80.5' must be a whole number"),
        ({"S2S_RATE_LIMIT": "0"}, "S2S_RATE_LIMIT, S2S_RATE_BURST: rate_limit must be > 0"),
        ({"S2S_POLL_INTERVAL": "0"}, "S2S_POLL_INTERVAL: poll_interval must be > 0"),
        ({"S2S_TOKEN_TTL": "2h"}, "S2S_TOKEN_TTL, S2S_MAX_TOKEN_TTL: token_ttl 7200s"),
    ],
)
def test_invalid_settings_say_what_is_wrong(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        IssuerSettings.from_env(environ=env)
    assert fragment in str(info.value)


def test_every_problem_is_named_in_one_line() -> None:
    env = {"S2S_PORT": "x", "S2S_TOKEN_TTL": "soon", "S2S_RUN_ROTATION": "maybe", "S2S_SIGNER": "hsm"}
    with pytest.raises(ConfigError) as info:
        IssuerSettings.from_env(environ=env)
    line = str(info.value)
    assert "\n" not in line
    for name in env:
        assert name in line


def test_durations_take_units() -> None:
    env = {
        "S2S_ROTATE_EVERY": "7d",
        "S2S_PUBLISH_LEAD": "1h",
        "S2S_TOKEN_TTL": "5m",
        "S2S_POLL_INTERVAL": "500ms",
    }
    s = IssuerSettings.from_env(environ=env)
    assert (s.rotation.rotate_every, s.rotation.publish_lead, s.token_ttl) == (7 * 86400, 3600, 300)
    assert s.poll_interval == 0.5


def test_blank_variables_count_as_unset() -> None:
    s = IssuerSettings.from_env(environ={"S2S_ISSUER": "", "S2S_SIGNER": " ", "S2S_PORT": ""})
    assert (s.issuer, s.signer, s.port) == ("http://127.0.0.1:8000", None, 8000)
