"""One contract for every issuer state store: replay, issuance budget, failure budgets."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from s2s.clock import FakeClock
from s2s.issuer import DynamoDBState, InMemoryState, IssuerState, SQLiteState, create_state_table
from s2s.issuer._ratelimit import FailureBudget, failure_key

BUDGET = FailureBudget(rate=0.1, burst=2, global_rate=0.1, global_burst=3)
Factory = Callable[[FakeClock], IssuerState]


@pytest.fixture(params=["memory", "sqlite", "dynamodb"])
def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    kind = request.param
    if kind == "memory":
        yield lambda clock: InMemoryState(1, 1, clock=clock, failures=BUDGET)
    elif kind == "sqlite":
        yield lambda clock: SQLiteState(
            tmp_path / "state.sqlite3", rate=1, burst=1, clock=clock, failures=BUDGET
        )
    elif kind == "dynamodb":
        request.getfixturevalue("mock_aws")
        create_state_table("contract", boto3.client("dynamodb", region_name="us-east-1"))
        yield lambda clock: DynamoDBState(
            "contract", rate=1, burst=1, clock=clock, client=boto3.client("dynamodb"), failures=BUDGET
        )


def test_failure_budgets_are_separate_from_issuance(make_state: Factory) -> None:
    clock = FakeClock(1_700_000_000.0)
    state: Any = make_state(clock)
    a, b, c = failure_key("svc", "10.0.0.1"), failure_key("svc", "10.0.0.2"), failure_key("x", "10.0.0.3")
    assert [state.record_failure(a), state.record_failure(a)] == [0.0, 0.0]
    assert state.failure_wait(a) > 0 and state.failure_wait(b) == 0.0
    assert state.record_failure(b) == 0.0  # third failure issuer-wide: the last one allowed
    assert state.record_failure(c) > 0  # the issuer-wide budget is spent ...
    assert state.failure_wait(c) == 0.0  # ... which never blocks evaluating c's next attempt
    assert state.acquire("svc") == 0.0  # failures never touch the issuance budget
    assert state.acquire("svc") > 0


def test_replay_is_refused_until_expiry(make_state: Factory) -> None:
    clock = FakeClock(1_700_000_000.0)
    state = make_state(clock)
    assert state.seen_or_add("pkj\0jti-1", clock.now() + 60) is False
    assert state.seen_or_add("pkj\0jti-1", clock.now() + 60) is True
    clock.advance(61)
    assert state.seen_or_add("pkj\0jti-1", clock.now() + 60) is False


def test_sqlite_state_is_private_shared_and_purged(tmp_path: Path) -> None:
    clock = FakeClock(1_700_000_000.0)
    path = tmp_path / "new-dir" / "state.sqlite3"
    one = SQLiteState(path, rate=1, burst=1, clock=clock)
    two = SQLiteState(path, rate=1, burst=1, clock=clock)  # another process on the same host
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert one.seen_or_add("pkj\0a", clock.now() + 10) is False
    assert two.seen_or_add("pkj\0a", clock.now() + 10) is True
    assert one.acquire("svc") == 0.0 and two.acquire("svc") > 0  # one budget for both
    for companion in path.parent.glob("state.sqlite3-*"):
        assert companion.stat().st_mode & 0o777 == 0o600, companion
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in path.parent.glob("state.sqlite3-*"))
    assert b"pkj" not in raw and b"svc" not in raw  # only digests are stored
    clock.advance(3600)
    two.purge()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM replay").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM bucket").fetchone() == (0,)
    conn.close()
    one.close()
    two.close()
