"""``aws-sm://`` references in any S2S_* issuer setting, resolved at startup (moto in-process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from s2s.errors import ConfigError
from s2s.issuer import IssuerSettings
from s2s.secrets import SecretError, SecretNotFound, SecretReference, SecretsManagerSource

ROOT = Path(__file__).resolve().parents[2]
RATE_SECRET = "7"  # not secret at all, but shows numbers come through references too


@pytest.fixture
def sm(sm: Any) -> Any:
    """The shared moto Secrets Manager, with the secrets these tests reference."""
    sm.create_secret(
        Name="s2s/issuer-config",
        SecretString=json.dumps(
            {"issuer": "https://issuer.from-secret.example", "rate": RATE_SECRET, "hidden": "TOP-SECRET-42"}
        ),
    )
    sm.create_secret(Name="s2s/state-url", SecretString="dynamodb://state-from-secret")
    return sm


class Recording:
    """A secret source that remembers what it was asked for."""

    def __init__(self, inner: SecretsManagerSource) -> None:
        self.inner = inner
        self.asked: list[str] = []

    def get(self, ref: str | SecretReference) -> str | bytes:
        self.asked.append(str(ref))
        return self.inner.get(ref)


class Refusing:
    """A secret source that must never be asked."""

    def get(self, ref: str | SecretReference) -> str | bytes:
        raise AssertionError("no reference, so no secret may be read")


def test_references_in_any_setting_are_resolved_at_startup(sm: Any) -> None:
    env = {
        "S2S_ISSUER": "aws-sm://s2s/issuer-config#issuer",
        "S2S_RATE_LIMIT": "aws-sm://s2s/issuer-config#rate?stage=AWSCURRENT",
        "S2S_STATE": "aws-sm://s2s/state-url",
        "S2S_TOKEN_TTL": "120",
        # store locations: an aws-sm:// here names the secret the store lives in, not a value
        "S2S_KEYSTORE": "aws-sm://s2s/keyset",
        "S2S_CLIENTS": "aws-sm://s2s/clients",
        "OTHER": "aws-sm://not-ours",
        "S2S_NOT_A_SETTING": "aws-sm://not-read",
    }
    source = Recording(SecretsManagerSource(client=sm))
    settings = IssuerSettings.from_env(environ=env, secrets=source)
    assert settings.issuer == "https://issuer.from-secret.example"
    assert settings.rate_limit == 7.0
    assert settings.state == "dynamodb://state-from-secret"
    assert settings.token_ttl == 120
    assert settings.keystore == "aws-sm://s2s/keyset" and settings.clients == "aws-sm://s2s/clients"
    # Only the settings the issuer reads are resolved: not other variables, not store locations.
    assert sorted(source.asked) == sorted(env[k] for k in ("S2S_ISSUER", "S2S_RATE_LIMIT", "S2S_STATE"))


def test_the_default_source_follows_the_aws_environment(sm: Any) -> None:
    settings = IssuerSettings.from_env(environ={"S2S_ISSUER": "aws-sm://s2s/issuer-config#issuer"})
    assert settings.issuer == "https://issuer.from-secret.example"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("aws-sm://s2s/missing#issuer", "secret_not_found"),
        ("aws-sm://s2s/issuer-config#nofield", "secret_field_missing"),
        ("aws-sm://s2s/issuer-config#issuer?stage=AWSPREVIOUS", "secret_not_found"),
    ],
)
def test_an_unreadable_reference_stops_startup_with_one_line(sm: Any, value: str, problem: str) -> None:
    env = {"S2S_ISSUER": value, "S2S_RATE_LIMIT": "aws-sm://s2s/issuer-config#rate"}
    with pytest.raises(SecretError) as raised:
        IssuerSettings.from_env(environ=env, secrets=SecretsManagerSource(client=sm))
    text = str(raised.value)
    assert raised.value.error == problem
    assert "\n" not in text and text.startswith("S2S_ISSUER=aws-sm://s2s/")
    for value_seen in ("TOP-SECRET-42", "issuer.from-secret", RATE_SECRET + '"'):
        assert value_seen not in text


def test_no_reference_reads_no_secret() -> None:
    settings = IssuerSettings.from_env(environ={"S2S_ISSUER": "https://x.example"}, secrets=Refusing())
    assert settings.issuer == "https://x.example"
    # Store locations are never taken for references either.
    env = {"S2S_KEYSTORE": "aws-sm://keys", "S2S_CLIENTS": "aws-sm://clients"}
    assert IssuerSettings.from_env(environ=env, secrets=Refusing()).keystore == "aws-sm://keys"


def test_a_missing_secret_at_service_startup_is_one_clear_line(tmp_path: Path) -> None:
    """The real entry point, as an operator would start it: one line, the reference, no value."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # No AWS is reachable here: the endpoint is a closed local port, retries are cut short.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
        "S2S_ISSUER": "aws-sm://s2s/nowhere#issuer",
        "S2S_KEYSTORE": f"file://{tmp_path / 'keys'}",
        "S2S_CLIENTS": f"file://{tmp_path / 'clients.json'}",
    }
    code = (
        "import sys\n"
        "from s2s.errors import S2SError\n"
        "try:\n"
        "    import services.issuer.app\n"
        "except S2SError as exc:\n"
        "    print(f'{exc.error}: {exc.description}', file=sys.stderr); sys.exit(2)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "S2S_ISSUER=aws-sm://s2s/nowhere#issuer" in lines[0]
    assert lines[0].startswith(("secret_unavailable", "secret_not_found", "secret_access_denied"))


def test_secret_errors_are_typed(sm: Any) -> None:
    with pytest.raises(SecretNotFound):
        IssuerSettings.from_env(
            environ={"S2S_PORT": "aws-sm://s2s/none"}, secrets=SecretsManagerSource(client=sm)
        )


def test_signer_state_and_kms_window_settings() -> None:
    settings = IssuerSettings.from_env(
        environ={"S2S_SIGNER": "aws-kms", "S2S_STATE": "dynamodb://t", "S2S_KMS_DELETION_WINDOW_DAYS": "7"}
    )
    assert (settings.signer, settings.state, settings.kms_deletion_window_days) == (
        "aws-kms",
        "dynamodb://t",
        7,
    )
    defaults = IssuerSettings.from_env(environ={})
    assert (defaults.signer, defaults.state, defaults.kms_deletion_window_days) == (
        None,
        "sqlite://keys/state.sqlite3",  # SQLite beside the default key store
        30,
    )
    for env, fragment in (
        ({"S2S_SIGNER": "hsm"}, "S2S_SIGNER='hsm' must be one of local, aws-kms"),
        ({"S2S_KMS_DELETION_WINDOW_DAYS": "0"}, "between 7 and 30"),
        ({"S2S_KMS_DELETION_WINDOW_DAYS": "31"}, "between 7 and 30"),
        (
            {"S2S_KMS_DELETION_WINDOW_DAYS": "7.5"},
            "S2S_KMS_DELETION_WINDOW_DAYS='7.5' must be a whole number",
        ),
    ):
        with pytest.raises(ConfigError, match=fragment):
            IssuerSettings.from_env(environ=env)
