"""Shared replay and rate-limit state in DynamoDB (moto in-process), and two issuer apps sharing it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import (
    DynamoDBState,
    InMemoryClientRegistry,
    InMemoryState,
    IssuerSettings,
    OAuthError,
    StateUnavailable,
    create_state_table,
    open_state,
)
from s2s.issuer._dynamodb import TTL_ATTRIBUTE
from s2s.issuer._settings import parse_state_url
from s2s.keys import RotationPolicy
from s2s.litestar.issuer import create_issuer_app
from tests.issuer.helpers import (
    AUDIENCE,
    FORM,
    ISSUER,
    SECRET,
    PkjClient,
    assert_refused,
    basic,
    make_assertion,
    refusal_reason,
)
from tests.support import MemoryKeyStore

TABLE = "s2s-state"


@pytest.fixture
def dynamodb(mock_aws: None) -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    assert create_state_table(TABLE, client) is True
    return client


def replica(dynamodb: Any, clock: FakeClock, *, rate: float = 100, burst: float = 100) -> DynamoDBState:
    # Each replica gets its own client, as separate processes would.
    return DynamoDBState(TABLE, rate=rate, burst=burst, clock=clock, client=boto3.client("dynamodb"))


def test_table_setup_is_idempotent_with_ttl(dynamodb: Any) -> None:
    assert create_state_table(TABLE, dynamodb) is False
    ttl = dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}
    table = dynamodb.describe_table(TableName=TABLE)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_a_jti_is_accepted_once_across_replicas(dynamodb: Any, clock: FakeClock) -> None:
    a, b = replica(dynamodb, clock), replica(dynamodb, clock)
    exp = clock.now() + 90
    assert a.seen_or_add("svc\0jti-1", exp) is False
    assert b.seen_or_add("svc\0jti-1", exp) is True
    assert a.seen_or_add("svc\0jti-1", exp) is True
    assert b.seen_or_add("svc\0jti-2", exp) is False  # another jti is independent
    assert a.seen_or_add("other\0jti-1", exp) is False  # and so is the same jti of another client
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert len(items) == 3
    for item in items:
        # Item keys are digests: no client id or jti is stored; TTL is set past the expiry.
        assert "jti" not in item["pk"]["S"] and "svc" not in item["pk"]["S"]
        assert int(item[TTL_ATTRIBUTE]["N"]) >= exp


def test_an_expired_entry_is_overwritten_even_before_ttl_deletes_it(dynamodb: Any, clock: FakeClock) -> None:
    a, b = replica(dynamodb, clock), replica(dynamodb, clock)
    assert a.seen_or_add("k", clock.now() + 10) is False
    clock.advance(9)
    assert b.seen_or_add("k", clock.now() + 10) is True
    clock.advance(1)  # at exp: the entry no longer protects anything (assertion exp + leeway passed)
    assert b.seen_or_add("k", clock.now() + 10) is False
    assert a.seen_or_add("k", clock.now() + 10) is True


def test_rate_limit_is_shared_per_fixed_window(dynamodb: Any) -> None:
    clock = FakeClock(1_700_000_000.0)  # a window boundary: burst/rate = 2 s divides it
    a, b = replica(dynamodb, clock, rate=2, burst=4), replica(dynamodb, clock, rate=2, burst=4)
    assert a.window == 2.0 and a.limit == 4
    assert [a.acquire("svc"), b.acquire("svc"), a.acquire("svc"), b.acquire("svc")] == [0.0] * 4
    clock.advance(0.5)
    assert b.acquire("svc") == pytest.approx(1.5)  # wait until the window ends
    assert a.acquire("svc") == pytest.approx(1.5)
    assert a.acquire("other") == 0.0  # another client has its own budget
    clock.advance(1.5)
    assert b.acquire("svc") == 0.0  # new window


def test_unreachable_table_fails_closed(
    dynamodb: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    gone = DynamoDBState("no-such-table", rate=1, burst=1, clock=clock, client=dynamodb)
    with pytest.raises(StateUnavailable) as raised:
        gone.seen_or_add("svc\0secret-jti", clock.now() + 10)
    # The state's own error, not an OAuth answer: the token endpoint maps it (503, tested below).
    assert not isinstance(raised.value, OAuthError) and raised.value.error == "state_unavailable"
    with pytest.raises(StateUnavailable):
        gone.acquire("svc")
    assert "ResourceNotFoundException" in caplog.text and "secret-jti" not in caplog.text


def test_state_setting_selects_the_backend(dynamodb: Any, clock: FakeClock) -> None:
    assert parse_state_url("memory") == ("memory", None, None)
    assert parse_state_url("dynamodb://t?region=eu-west-1") == ("dynamodb", "t", "eu-west-1")
    assert isinstance(open_state("memory", rate=1, burst=1, clock=clock), InMemoryState)
    state = open_state(f"dynamodb://{TABLE}", rate=1, burst=1, clock=clock)
    assert isinstance(state, DynamoDBState) and state.table == TABLE
    assert state.seen_or_add("x", clock.now() + 5) is False  # boto3 client made from the environment
    for bad in ("redis://x", "dynamodb://", "dynamodb://a/b"):
        with pytest.raises(ConfigError, match="S2S_STATE"):
            parse_state_url(bad)
    settings = IssuerSettings.from_env(environ={"S2S_STATE": f"dynamodb://{TABLE}"})
    assert settings.state == f"dynamodb://{TABLE}"
    with pytest.raises(ConfigError, match="S2S_STATE"):
        IssuerSettings.from_env(environ={"S2S_STATE": "redis://cache"})


# -- two issuer apps sharing the table ----------------------------------------------------------


@pytest.fixture
def two_apps(
    dynamodb: Any, registry: InMemoryClientRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> Iterator[tuple[TestClient[Litestar], TestClient[Litestar]]]:
    caplog.set_level(logging.DEBUG)
    settings = IssuerSettings(
        issuer=ISSUER, rotation=RotationPolicy(), rate_limit=3, rate_burst=3, state=f"dynamodb://{TABLE}"
    )
    store = MemoryKeyStore()  # the key store is shared too; it is not what this test is about
    apps = [
        create_issuer_app(settings, store=store, registry=registry, clock=clock, reload_loop=False)
        for _ in range(2)
    ]
    with TestClient(apps[0], base_url=ISSUER) as a, TestClient(apps[1], base_url=ISSUER) as b:
        yield a, b


def pkj_form(assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }


def test_a_replayed_assertion_is_refused_by_every_replica(
    two_apps: tuple[TestClient[Litestar], TestClient[Litestar]],
    pkj: PkjClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = two_apps
    assertion = make_assertion(pkj, now=clock.now())
    first = a.post("/oauth2/token", data=pkj_form(assertion), headers={"content-type": FORM})
    assert first.status_code == 200, first.text
    for replica_client in (b, a):
        again = replica_client.post("/oauth2/token", data=pkj_form(assertion), headers={"content-type": FORM})
        assert_refused(again, 401, "invalid_client", caplog, assertion)
        assert "already used" in refusal_reason(caplog)
    clock.advance(1.0)  # the next rate-limit window (rate 3/s, burst 3): the three calls above used it
    fresh = make_assertion(pkj, now=clock.now())
    assert b.post("/oauth2/token", data=pkj_form(fresh), headers={"content-type": FORM}).status_code == 200


def test_rate_limit_is_shared_by_two_apps(
    two_apps: tuple[TestClient[Litestar], TestClient[Litestar]], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = two_apps
    headers = {"authorization": basic("svc", SECRET), "content-type": FORM}
    form = {"grant_type": "client_credentials", "audience": AUDIENCE}
    # The fake clock does not move: all requests fall into one window of burst/rate = 1 s, limit 3.
    statuses = [c.post("/oauth2/token", data=form, headers=headers).status_code for c in (a, b, a)]
    assert statuses == [200, 200, 200]
    for c in (b, a):
        limited = c.post("/oauth2/token", data=form, headers=headers)
        assert_refused(limited, 429, "slow_down", caplog, SECRET)
        assert int(limited.headers["retry-after"]) >= 1


def test_state_outage_answers_503_without_details(
    dynamodb: Any,
    two_apps: tuple[TestClient[Litestar], TestClient[Litestar]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = two_apps
    dynamodb.delete_table(TableName=TABLE)
    response: httpx.Response = a.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": AUDIENCE},
        headers={"authorization": basic("svc", SECRET), "content-type": FORM},
    )
    body = assert_refused(response, 503, "temporarily_unavailable", caplog, SECRET)
    assert "DynamoDB" not in body["error_description"] and TABLE not in response.text
    assert response.headers["retry-after"]


def test_cli_state_init_creates_the_table(dynamodb: Any) -> None:
    from click.testing import CliRunner

    from s2s.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["state", "init", "--state", "dynamodb://cli-table"])
    assert result.exit_code == 0, result.output
    assert "cli-table created" in result.output
    ttl = dynamodb.describe_time_to_live(TableName="cli-table")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    again = runner.invoke(main, ["state", "init"], env={"S2S_STATE": "dynamodb://cli-table"})
    assert again.exit_code == 0 and "cli-table exists" in again.output
    bad = runner.invoke(main, ["state", "init", "--state", "redis://x"])
    assert bad.exit_code != 0 and "S2S_STATE" in bad.output


def test_the_memory_default_and_local_signing_load_no_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from s2s.issuer import IssuerSettings\n"
        "from s2s.litestar.issuer import create_issuer_app\n"
        "from s2s.issuer import InMemoryClientRegistry\n"
        "from tests.support import MemoryKeyStore\n"
        "create_issuer_app(IssuerSettings(), store=MemoryKeyStore(), registry=InMemoryClientRegistry([]))\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
