from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from s2s.secrets import (
    SecretError,
    SecretFieldMissing,
    SecretNotFound,
    SecretsManagerSource,
    resolve,
    resolve_env,
    resolve_settings,
)

VALUE = "s3cr3t-Value-XYZ"


@pytest.fixture
def source(sm: Any) -> SecretsManagerSource:
    sm.create_secret(Name="app", SecretString=json.dumps({"password": VALUE, "user": "svc"}))
    sm.create_secret(Name="blob", SecretBinary=b"\xff\xfe\x00")
    return SecretsManagerSource(sm)


def test_resolve_value(source: SecretsManagerSource) -> None:
    assert resolve("aws-sm://app#password", source=source) == VALUE
    assert resolve("plain", source=source) == "plain"


def test_resolve_env_resolves_only_prefixed_references(source: SecretsManagerSource) -> None:
    environ = {
        "S2S_DB_PASSWORD": "aws-sm://app#password",
        "S2S_DB_USER": "aws-sm://app#user",
        "S2S_PLAIN": "hello",
        "OTHER": "aws-sm://app#password",
    }
    env = resolve_env(environ=environ, source=source)
    assert env["S2S_DB_PASSWORD"] == VALUE and env["S2S_DB_USER"] == "svc"
    assert env["S2S_PLAIN"] == "hello" and env["OTHER"] == "aws-sm://app#password"
    assert environ["S2S_DB_PASSWORD"] == "aws-sm://app#password"  # a copy, the input is untouched


def test_resolve_env_reads_os_environ(source: SecretsManagerSource, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_TEST_SECRET", "aws-sm://app#password")
    assert resolve_env(source=source)["S2S_TEST_SECRET"] == VALUE


def test_no_reference_needs_no_aws() -> None:
    # No source given and no reference: nothing is built, so this works without AWS credentials.
    assert resolve_settings({"S2S_A": "1"}) == {"S2S_A": "1"}


def test_one_line_naming_every_failing_reference(
    source: SecretsManagerSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = {
        "S2S_OK": "aws-sm://app#password",
        "S2S_MISSING": "aws-sm://nope",
        "S2S_FIELD": "aws-sm://app#pass",
    }
    with pytest.raises(SecretNotFound) as info:
        resolve_settings(settings, source=source)
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        "S2S_MISSING=aws-sm://nope: no such secret; "
        "S2S_FIELD=aws-sm://app#pass: the secret has no field 'pass'"
    )
    assert VALUE not in message and VALUE not in caplog.text


def test_single_failure_keeps_its_type(source: SecretsManagerSource) -> None:
    with pytest.raises(SecretFieldMissing) as info:
        resolve_settings({"S2S_X": "aws-sm://app#nope"}, source=source)
    assert str(info.value) == "S2S_X=aws-sm://app#nope: the secret has no field 'nope'"


def test_binary_secret_in_a_text_setting_is_refused(source: SecretsManagerSource) -> None:
    with pytest.raises(SecretError) as info:
        resolve_settings({"S2S_KEY": "aws-sm://blob"}, source=source)
    assert "binary" in str(info.value)


def test_invalid_reference_is_reported(source: SecretsManagerSource) -> None:
    with pytest.raises(SecretError) as info:
        resolve_settings({"S2S_X": "aws-sm://app?colour=red"}, source=source)
    assert str(info.value).startswith("S2S_X=aws-sm://app?colour=red: ")
