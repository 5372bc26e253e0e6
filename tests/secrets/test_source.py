from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from botocore.stub import Stubber

from s2s.clock import FakeClock
from s2s.secrets import (
    SecretAccessDenied,
    SecretFieldMissing,
    SecretNotFound,
    SecretsManagerSource,
    SecretUnavailable,
)

VALUE = "pA55-w0rd-never-shown"
DOC = json.dumps({"username": "svc", "password": VALUE, "port": 5432, "nested": {"a": 1}})


def test_string_secret_and_fields(sm: Any) -> None:
    sm.create_secret(Name="prod/db", SecretString=DOC)
    source = SecretsManagerSource(sm)
    assert source.get("aws-sm://prod/db") == DOC
    assert source.get("aws-sm://prod/db#password") == VALUE
    assert source.get("aws-sm://prod/db#port") == "5432"
    assert json.loads(source.get_text("aws-sm://prod/db#nested")) == {"a": 1}
    assert source.get_json("aws-sm://prod/db")["username"] == "svc"


def test_binary_secret(sm: Any) -> None:
    blob = bytes(range(256))
    sm.create_secret(Name="blob", SecretBinary=blob)
    source = SecretsManagerSource(sm)
    assert source.get("aws-sm://blob") == blob
    assert source.get_bytes("aws-sm://blob") == blob
    sm.create_secret(Name="jsonblob", SecretBinary=DOC.encode())
    assert source.get("aws-sm://jsonblob#password") == VALUE


def test_version_stages_and_version_id(sm: Any) -> None:
    first = sm.create_secret(Name="rot", SecretString="v1")["VersionId"]
    sm.put_secret_value(SecretId="rot", SecretString="v2")  # moves AWSCURRENT, v1 becomes AWSPREVIOUS
    pending = sm.put_secret_value(SecretId="rot", SecretString="v3", VersionStages=["AWSPENDING"])
    source = SecretsManagerSource(sm)
    assert source.get("aws-sm://rot") == "v2"
    assert source.get("aws-sm://rot?stage=AWSCURRENT") == "v2"
    assert source.get("aws-sm://rot?stage=AWSPREVIOUS") == "v1"
    assert source.get("aws-sm://rot?stage=AWSPENDING") == "v3"
    assert source.get(f"aws-sm://rot?version_id={first}") == "v1"
    assert source.fetch("rot", version_id=pending["VersionId"]).stages == ("AWSPENDING",)


def test_ttl_cache_with_jitter(sm: Any, clock: FakeClock) -> None:
    sm.create_secret(Name="t", SecretString="old")
    source = SecretsManagerSource(sm, ttl=100, jitter=0.1, clock=clock, rng=lambda: 1.0)
    assert source.get("aws-sm://t") == "old"
    sm.put_secret_value(SecretId="t", SecretString="new")
    clock.advance(89.9)
    assert source.get("aws-sm://t") == "old"  # cached for ttl * (1 - jitter * 1.0) = 90 s
    clock.advance(0.1)
    assert source.get("aws-sm://t") == "new"


def test_jitter_spreads_expiry(sm: Any, clock: FakeClock) -> None:
    sm.create_secret(Name="t", SecretString="old")
    source = SecretsManagerSource(sm, ttl=100, jitter=0.2, clock=clock, rng=lambda: 0.0)
    source.get("aws-sm://t")
    sm.put_secret_value(SecretId="t", SecretString="new")
    clock.advance(99)
    assert source.get("aws-sm://t") == "old"  # rng 0: the full ttl
    clock.advance(1)
    assert source.get("aws-sm://t") == "new"


def test_refresh_on_demand(sm: Any, clock: FakeClock) -> None:
    sm.create_secret(Name="r", SecretString="old")
    sm.create_secret(Name="other", SecretString="o1")
    source = SecretsManagerSource(sm, clock=clock)
    source.get("aws-sm://r")
    source.get("aws-sm://other")
    sm.put_secret_value(SecretId="r", SecretString="new")
    sm.put_secret_value(SecretId="other", SecretString="o2")
    source.refresh("aws-sm://r#anything")
    assert source.get("aws-sm://r") == "new"
    assert source.get("aws-sm://other") == "o1"
    source.refresh()
    assert source.get("aws-sm://other") == "o2"
    assert source.fetch("r", force=True).text == "new"


def test_missing_secret_names_the_reference(sm: Any) -> None:
    with pytest.raises(SecretNotFound) as info:
        SecretsManagerSource(sm).get("aws-sm://nope#field")
    assert str(info.value) == "aws-sm://nope#field: no such secret"
    assert info.value.reference == "aws-sm://nope#field"


def test_missing_stage(sm: Any) -> None:
    sm.create_secret(Name="s", SecretString="x")
    with pytest.raises(SecretNotFound) as info:
        SecretsManagerSource(sm).get("aws-sm://s?stage=AWSPENDING")
    assert "AWSPENDING" in str(info.value)


def test_missing_field_never_shows_the_value(sm: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sm.create_secret(Name="db", SecretString=DOC)
    sm.create_secret(Name="plain", SecretString=VALUE)
    source = SecretsManagerSource(sm)
    with pytest.raises(SecretFieldMissing) as missing:
        source.get("aws-sm://db#pasword")
    assert str(missing.value) == "aws-sm://db#pasword: the secret has no field 'pasword'"
    with pytest.raises(SecretFieldMissing) as not_json:
        source.get("aws-sm://plain#password")
    with pytest.raises(SecretFieldMissing) as bad_json:
        source.get_json("aws-sm://plain")
    for exc in (missing.value, not_json.value, bad_json.value):
        assert VALUE not in str(exc) and VALUE not in repr(exc)
        assert (exc.__cause__ is None and exc.__context__ is None) or VALUE not in str(exc.__context__)
    assert VALUE not in caplog.text
    assert VALUE not in repr(source.fetch("plain"))


def test_botocore_debug_logs_do_not_carry_secret_values(sm: Any, caplog: pytest.LogCaptureFixture) -> None:
    source = SecretsManagerSource(sm)
    caplog.set_level(logging.DEBUG)
    # A service host may have quieted botocore (configure_host_logging); DEBUG is what leaks.
    caplog.set_level(logging.DEBUG, logger="botocore")
    sm.put_secret_value(SecretId=sm.create_secret(Name="d", SecretString="x")["ARN"], SecretString=VALUE)
    assert source.get("aws-sm://d") == VALUE
    assert "Response body" in caplog.text or "withheld" in caplog.text  # botocore did log at DEBUG
    assert "withheld" in caplog.text
    assert VALUE not in caplog.text


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("AccessDeniedException", SecretAccessDenied),
        ("DecryptionFailure", SecretAccessDenied),
        ("ExpiredTokenException", SecretAccessDenied),
        ("InternalServiceError", SecretUnavailable),
    ],
)
def test_permission_errors_name_the_reference(sm: Any, code: str, error: type[Exception]) -> None:
    stubber = Stubber(sm)
    stubber.add_client_error(
        "get_secret_value", service_error_code=code, service_message="User: arn:... is not authorized"
    )
    with stubber, pytest.raises(error) as info:
        SecretsManagerSource(sm).get("aws-sm://locked#password")
    assert str(info.value).startswith("aws-sm://locked#password: ")
    assert code in str(info.value)


def test_unreachable_endpoint_is_unavailable(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from s2s.aws import aws_client
    from tests.support import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    client = aws_client("secretsmanager")
    with pytest.raises(SecretUnavailable) as info:
        SecretsManagerSource(client).get("aws-sm://x")
    assert "cannot reach Secrets Manager" in str(info.value)


def test_default_client_honours_aws_endpoint_url(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.support import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("secretsmanager", endpoint_url=endpoint).create_secret(Name="remote", SecretString=DOC)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        source = SecretsManagerSource()  # no client: built by s2s.aws.aws_client from the environment
        assert source.get("aws-sm://remote#password") == VALUE
        assert source.client.meta.endpoint_url == endpoint
        assert source.client.meta.config.retries["mode"] == "standard"
    finally:
        server.stop()
