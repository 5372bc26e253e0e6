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
    assert len(limiter._buckets) <= 10
