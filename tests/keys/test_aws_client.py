"""s2s.aws, the client factory the AWS key store (and every other AWS adapter) builds on."""

from __future__ import annotations

import sys

import boto3
import pytest

from s2s.aws import aws_client, aws_region
from s2s.errors import MissingExtra
from s2s.keys.aws_sm import SecretsManagerKeyStore


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
