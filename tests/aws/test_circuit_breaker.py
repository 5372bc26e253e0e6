"""The circuit breaker in the one AWS call seam: fail fast after repeated unreachable calls."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

from s2s.aws import AwsError, AwsService, AwsSettings, AwsUnreachable, CircuitBreaker
from s2s.clock import FakeClock
from s2s.errors import ConfigError


class _Service(AwsService):
    service = "dynamodb"


class _Client:
    """A stand-in botocore client: each call fails as told."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail: Exception | None = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    def get_item(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return {}


def test_the_breaker_opens_fails_fast_and_closes_after_a_good_trial() -> None:
    clock = FakeClock()
    client = _Client()
    db = _Service(client, breaker=CircuitBreaker(3, 5.0, clock=clock))
    for _ in range(3):
        with pytest.raises(AwsUnreachable) as info:
            db.call("get_item", TableName="t")
        assert info.value.code == "EndpointConnectionError"
    assert client.calls == 3 and db.breaker.is_open
    for _ in range(10):  # open: no call reaches the client
        with pytest.raises(AwsUnreachable) as info:
            db.call("get_item", TableName="t")
        assert info.value.code == "CircuitOpen"
    assert client.calls == 3
    clock.advance(5.0)
    client.fail = ConnectTimeoutError(endpoint_url="http://127.0.0.1:1")
    with pytest.raises(AwsUnreachable):
        db.call("get_item", TableName="t")  # the one trial, failing: open again
    assert client.calls == 4
    with pytest.raises(AwsUnreachable, match="CircuitOpen"):
        db.call("get_item", TableName="t")
    clock.advance(5.0)
    client.fail = None
    assert db.call("get_item", TableName="t") == {}
    assert not db.breaker.is_open and client.calls == 5


def test_an_answer_that_refuses_is_not_a_failure() -> None:
    clock = FakeClock()
    client = _Client()
    refusal = Exception("conditional")
    refusal.response = {"Error": {"Code": "ConditionalCheckFailedException"}}  # type: ignore[attr-defined]
    client.fail = refusal
    db = _Service(client, breaker=CircuitBreaker(2, 5.0, clock=clock))
    for _ in range(5):
        with pytest.raises(AwsError) as info:
            db.call("get_item", TableName="t")
        assert info.value.code == "ConditionalCheckFailedException"
    assert client.calls == 5 and not db.breaker.is_open


def test_a_trial_that_hangs_is_replaced_after_another_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 2.0, clock=clock)
    breaker.failure()
    assert not breaker.allow()
    clock.advance(2.0)
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # others wait while it runs
    clock.advance(2.0)
    assert breaker.allow()  # the trial never came back: another one


def test_breaker_settings_from_the_environment() -> None:
    env = {"S2S_AWS_BREAKER_THRESHOLD": "5", "S2S_AWS_BREAKER_COOLDOWN": "10s"}
    settings = AwsSettings.from_env(environ=env)
    assert (settings.breaker_threshold, settings.breaker_cooldown) == (5, 10.0)
    service = _Service(_Client(), settings=settings)
    assert (service.breaker.threshold, service.breaker.cooldown) == (5, 10.0)
    with pytest.raises(ConfigError):
        AwsSettings(breaker_threshold=0)
