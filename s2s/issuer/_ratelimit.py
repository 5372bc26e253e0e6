"""Rate limiting for the token endpoint: an issuance budget per client, and failure budgets.

Two kinds of budget, so that nobody can spend a client's budget but the client itself:

* **Issuance** (:meth:`RateLimiter.acquire`, keyed by client id): charged only *after* the client
  authenticated, so junk naming a client (a wrong secret, an unsigned assertion whose payload says
  ``iss=victim``) never touches it.
* **Failures** (:meth:`RateLimiter.failure_wait` / :meth:`RateLimiter.record_failure`): each failed
  client authentication is charged to the presented (client id, source address) pair and to one
  issuer-wide failure budget. A pair whose budget is empty is answered ``429`` before its
  credentials are even looked at; when the issuer-wide budget is empty, *failed* attempts are
  answered ``429`` (and their log lines dropped) while correct credentials still pass. Junk from
  other addresses therefore never delays a client that authenticates correctly.

Every state store (memory, SQLite, DynamoDB) implements the same three calls; this module holds
the in-process token buckets and the budget figures they all use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from s2s.clock import Clock, system_clock

__all__ = ["GLOBAL_FAILURES", "FailureBudget", "RateLimiter", "TokenBucketLimiter", "failure_key"]

# The key of the issuer-wide failure budget: no presented client id can collide with it (ids
# never contain NUL, see s2s.oauth.CLIENT_ID).
GLOBAL_FAILURES = "\0all"


def failure_key(client_id: str, source: str | None) -> str:
    """The failure bucket of a presented client id (known or not) from one source address."""
    return f"{client_id}\0{source or '-'}"


@dataclass(frozen=True, slots=True)
class FailureBudget:
    """Failed client authentications allowed: per (client id, source) and issuer-wide.

    A client that mistypes its secret a few times is not blocked (``burst``); a guesser gets
    ``rate`` attempts per second per address. The issuer-wide budget bounds the failures the
    issuer evaluates and logs in total.
    """

    rate: float = 0.5
    burst: float = 10.0
    global_rate: float = 200.0
    global_burst: float = 400.0

    def __post_init__(self) -> None:
        if min(self.rate, self.global_rate) <= 0 or min(self.burst, self.global_burst) < 1:
            raise ValueError("failure rates must be > 0 and bursts >= 1")

    def rate_burst(self) -> tuple[float, float]:
        return float(self.rate), float(self.burst)

    def global_rate_burst(self) -> tuple[float, float]:
        return float(self.global_rate), float(self.global_burst)


class RateLimiter(Protocol):
    def acquire(self, key: str) -> float:
        """Charge the issuance budget of client ``key`` (an authenticated client): 0.0 when the
        token may be issued, else the seconds to wait before retrying."""
        ...

    def failure_wait(self, key: str) -> float:
        """Read only: 0.0 while attempts from ``key`` (:func:`failure_key`) are evaluated, else the
        seconds until the next one will be."""
        ...

    def record_failure(self, key: str) -> float:
        """Charge one failed authentication to ``key`` and to the issuer-wide budget: 0.0 while
        both had room, else the seconds to wait."""
        ...


class _Buckets:
    """Token buckets for one (rate, burst), by key. Not locked: the owner holds the lock."""

    def __init__(self, rate: float, burst: float, max_keys: int) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._max_keys = max_keys
        self._table: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._table.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def peek(self, key: str, now: float) -> float:
        tokens = self._tokens(key, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, key: str, now: float) -> float:
        tokens = self._tokens(key, now)
        if tokens >= 1.0:
            if len(self._table) >= self._max_keys and key not in self._table:
                self._prune(now)
            self._table[key] = (tokens - 1.0, now)
            return 0.0
        self._table[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # A full bucket is the same as no bucket: drop those first.
        full = [k for k, (t, at) in self._table.items() if t + (now - at) * self.rate >= self.burst]
        for k in full:
            del self._table[k]
        if len(self._table) >= self._max_keys:
            self._table.clear()


class TokenBucketLimiter:
    """Token buckets in this process: ``rate`` tokens per second per client on average, bursts up
    to ``burst``; failures as :class:`FailureBudget` says.

    Issuance keys are authenticated client ids, so that table stays as small as the registry;
    failure keys come from callers, so every table has a cap (full buckets are dropped first).
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Clock = system_clock,
        max_keys: int = 100_000,
        failures: FailureBudget | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        failures = failures or FailureBudget()
        self.rate = float(rate)
        self.burst = float(burst)
        self.failures = failures
        self._clock = clock
        self._issued = _Buckets(rate, burst, max_keys)
        self._failed = _Buckets(failures.rate, failures.burst, max_keys)
        self._all_failed = _Buckets(failures.global_rate, failures.global_burst, 1)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        now = self._clock.monotonic()
        with self._lock:
            return self._issued.take(key, now)

    def failure_wait(self, key: str) -> float:
        now = self._clock.monotonic()
        with self._lock:
            return self._failed.peek(key, now)

    def record_failure(self, key: str) -> float:
        now = self._clock.monotonic()
        with self._lock:
            return max(self._failed.take(key, now), self._all_failed.take(GLOBAL_FAILURES, now))
