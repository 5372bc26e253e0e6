from __future__ import annotations

from s2s.clock import FakeClock
from s2s.issuer import TokenBucketLimiter


def test_token_bucket_burst_refill_and_retry_after(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == 0.5
    assert limiter.acquire("b") == 0.0  # buckets are per key
    clock.advance(0.5)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    clock.advance(100)
    assert [limiter.acquire("a") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]  # refills only up to burst


def test_table_is_bounded(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock, max_keys=10)
    for i in range(50):
        assert limiter.acquire(f"k{i}") == 0.0
    assert len(limiter._issued._table) <= 10


def test_failures_have_their_own_budgets_per_key_and_issuer_wide() -> None:
    from s2s.issuer._ratelimit import FailureBudget, failure_key

    clock = FakeClock(0.0)
    budget = FailureBudget(rate=1, burst=2, global_rate=1, global_burst=3)
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock, failures=budget)
    a, b = failure_key("svc", "10.0.0.1"), failure_key("svc", "10.0.0.2")
    assert [limiter.record_failure(a), limiter.record_failure(a)] == [0.0, 0.0]
    assert limiter.failure_wait(a) == 1.0 and limiter.failure_wait(a) == 1.0  # peeking is free
    assert limiter.failure_wait(b) == 0.0  # another address is not affected
    assert limiter.record_failure(b) == 0.0  # the third failure issuer-wide: the last one allowed
    c = failure_key("other", "10.0.0.3")
    assert limiter.record_failure(c) > 0  # issuer-wide budget spent
    assert limiter.failure_wait(c) == 0.0  # ... yet c's own bucket still admits attempts
    assert limiter.acquire("svc") == 0.0  # and failures never touch the issuance budget
