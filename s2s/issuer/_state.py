"""The issuer's mutable state: seen client-assertion ``jti`` values and per-client rate limits.

One protocol, :class:`IssuerState` (a :class:`~s2s.issuer._assertion.ReplayCache` and a
:class:`~s2s.issuer._ratelimit.RateLimiter` at once), with three implementations chosen by the
``S2S_STATE`` setting:

* ``sqlite://PATH`` (the default when ``S2S_STATE`` is unset: ``state.sqlite3`` beside the key
  store): one file shared by every issuer process on the host, surviving restarts
  (:class:`~s2s.issuer._sqlite_state.SQLiteState`).
* ``dynamodb://TABLE[?region=R]``: one DynamoDB table shared by replicas on several hosts
  (:class:`s2s.issuer._dynamodb.DynamoDBState`, imported only when chosen: it needs boto3).
* ``memory``: one process's memory, gone with it: for tests only (set it explicitly).

When the shared store cannot be reached, the state fails closed: it raises
:class:`~s2s.issuer.errors.StateUnavailable`, which the token endpoint answers with
``503 temporarily_unavailable``, never a token whose replay or rate could not be checked. That is
``S2S_STATE_FAILURE_MODE=closed``, the default; ``local`` is the explicit alternative (this
replica's memory stands in during the outage: :mod:`s2s.issuer._fallback_state`).
"""

from __future__ import annotations

from typing import Protocol

from s2s.clock import Clock, system_clock
from s2s.issuer._assertion import InMemoryReplayCache
from s2s.issuer._ratelimit import FailureBudget, RateLimiter, TokenBucketLimiter
from s2s.issuer._settings import parse_state_url
from s2s.issuer._sqlite_state import SQLiteState

__all__ = ["InMemoryState", "IssuerState", "SQLiteState", "open_state", "parse_state_url"]


class IssuerState(RateLimiter, Protocol):
    """A replay cache and a :class:`~s2s.issuer._ratelimit.RateLimiter` (issuance and failure
    budgets, see :mod:`s2s.issuer._ratelimit`) in one store."""

    def seen_or_add(self, key: str, expires_at: float) -> bool:
        """True if ``key`` was recorded and has not expired; otherwise record it until ``expires_at``."""
        ...


class InMemoryState:
    """The single-replica default: a replay cache and token buckets in this process."""

    def __init__(
        self, rate: float, burst: float, *, clock: Clock = system_clock, failures: FailureBudget | None = None
    ) -> None:
        self.replay = InMemoryReplayCache(clock)
        self.limiter = TokenBucketLimiter(rate, burst, clock=clock, failures=failures)
        self.url = "memory"

    def seen_or_add(self, key: str, expires_at: float) -> bool:
        return self.replay.seen_or_add(key, expires_at)

    def acquire(self, key: str) -> float:
        return self.limiter.acquire(key)

    def failure_wait(self, key: str) -> float:
        return self.limiter.failure_wait(key)

    def record_failure(self, key: str) -> float:
        return self.limiter.record_failure(key)


def open_state(url: str, *, rate: float, burst: float, clock: Clock = system_clock) -> IssuerState:
    """The state store ``url`` names (see :func:`parse_state_url`)."""
    kind, table, region = parse_state_url(url)
    if kind == "memory":
        return InMemoryState(rate, burst, clock=clock)
    if kind == "sqlite":
        assert table is not None
        return SQLiteState(table, rate=rate, burst=burst, clock=clock)
    # Imported on demand: the DynamoDB adapter needs boto3, the in-memory default does not.
    from s2s.issuer._dynamodb import DynamoDBState  # noqa: PLC0415

    assert table is not None
    return DynamoDBState(table, rate=rate, burst=burst, clock=clock, region=region)
