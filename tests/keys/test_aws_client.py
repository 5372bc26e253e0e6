"""s2s.aws: the client factory, its settings and the access layer every AWS adapter builds on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from s2s.aws import AwsSettings, aws_client, aws_region
from s2s.errors import ConfigError, MissingExtra
from s2s.issuer import DynamoDBState, SecretsManagerClientRegistry
from s2s.keys import SecretsManagerKeyStore
from s2s.keys.errors import KeyStoreError
from s2s.secrets import SecretAccessDenied, SecretsManagerSource
from tests.conftest import no_aws_credentials


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    with pytest.raises(MissingExtra) as info:
        aws_client("secretsmanager")
    assert "pip install 's2s[aws]'" in str(info.value)
    assert info.value.error == "missing_extra"
    # A store whose client would need boto3 fails the same way, on first use.
    with pytest.raises(MissingExtra):
        SecretsManagerKeyStore("name").load()


def test_region_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert aws_region() == "us-east-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert aws_region() == "eu-central-1"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert aws_region() == "ap-south-1"
    assert aws_region("us-west-2") == "us-west-2"
    assert aws_client("secretsmanager").meta.region_name == "ap-south-1"


def test_standard_retries_and_endpoint_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    client = aws_client("secretsmanager", region="us-east-1")
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"
    assert client.meta.config.retries["mode"] == "standard"
    # the service-specific variable wins, as in every AWS SDK
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:5000")
    assert aws_client("secretsmanager").meta.endpoint_url == "http://127.0.0.1:5000"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
    assert "amazonaws.com" in aws_client("secretsmanager", region="eu-west-1").meta.endpoint_url


def test_session_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    session = boto3.session.Session(region_name="sa-east-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    client = aws_client("kms", session=session, region="ca-central-1")
    assert client.meta.service_model.service_name == "kms"
    assert client.meta.region_name == "ca-central-1"
    assert aws_client("kms", session=session).meta.region_name == "sa-east-1"


def test_timeouts_and_retries_are_tight_by_default_and_configurable(aws_env: None) -> None:
    # A hung AWS endpoint must turn into "try again" within seconds (issue 10), not a minute.
    config = aws_client("secretsmanager").meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 2.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    env = {"S2S_AWS_CONNECT_TIMEOUT": "500ms", "S2S_AWS_READ_TIMEOUT": "5", "S2S_AWS_MAX_ATTEMPTS": "1"}
    settings = AwsSettings.from_env(environ=env)
    assert settings == AwsSettings(connect_timeout=0.5, read_timeout=5.0, max_attempts=1)
    config = aws_client("dynamodb", settings=settings).meta.config
    assert (config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]) == (
        0.5,
        5.0,
        1,
    )


def test_invalid_aws_settings_name_every_variable(aws_env: None) -> None:
    env = {"S2S_AWS_CONNECT_TIMEOUT": "soon", "S2S_AWS_MAX_ATTEMPTS": "0"}
    with pytest.raises(ConfigError) as info:
        AwsSettings.from_env(environ=env)
    line = str(info.value)
    assert "S2S_AWS_CONNECT_TIMEOUT='soon' must be a duration" in line
    assert "S2S_AWS_MAX_ATTEMPTS must be between 1 and 10, not 0" in line
    assert "\n" not in line


def test_no_credentials_is_said_plainly(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Issue 13: not "cannot reach Secrets Manager" when the problem is that nobody is logged in.
    no_aws_credentials(monkeypatch, tmp_path)
    with pytest.raises(SecretAccessDenied, match="no AWS credentials found"):
        SecretsManagerSource().get("aws-sm://prod/db#password")
    with pytest.raises(KeyStoreError, match="no AWS credentials found"):
        SecretsManagerKeyStore("prod/keys").load()


def test_every_adapter_takes_an_injected_session(aws_env: None) -> None:
    session = boto3.session.Session(region_name="eu-west-3")
    assert SecretsManagerKeyStore("k", session=session).client.meta.region_name == "eu-west-3"
    assert SecretsManagerClientRegistry("c", session=session).client.meta.region_name == "eu-west-3"
    assert SecretsManagerSource(session=session).client.meta.region_name == "eu-west-3"
    state = DynamoDBState("t", rate=1, burst=1, session=session)
    assert state.client.meta.region_name == "eu-west-3"


def test_a_reference_may_name_the_region_of_its_secret(sm: Any) -> None:
    boto3.client("secretsmanager", region_name="eu-west-1").create_secret(Name="db", SecretString="far")
    sm.create_secret(Name="db", SecretString="near")
    source = SecretsManagerSource()
    assert source.get("aws-sm://db") == "near"
    assert source.get("aws-sm://db?region=eu-west-1") == "far"
    assert source.get("aws-sm://db?stage=AWSCURRENT&region=eu-west-1") == "far"
