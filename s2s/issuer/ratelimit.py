"""Per-client rate limiting for the token endpoint."""

from __future__ import annotations

import threading
from typing import Protocol

from s2s.clock import Clock, system_clock

__all__ = ["RateLimiter", "TokenBucketLimiter"]


class RateLimiter(Protocol):
    def acquire(self, key: str) -> float:
        """0.0 when the request may proceed, else the seconds to wait before retrying."""
        ...


class TokenBucketLimiter:
    """A token bucket per key: ``rate`` requests per second on average, bursts up to ``burst``.

    Keys are registered client ids, so the table stays as small as the registry; a cap guards
    against misuse with arbitrary keys anyway.
    """

    def __init__(
        self, rate: float, burst: float, *, clock: Clock = system_clock, max_keys: int = 100_000
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        now = self._clock.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= self._max_keys and key not in self._buckets:
                    self._prune(now)
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # A full bucket is the same as no bucket: drop those first.
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self._max_keys:
            self._buckets.clear()
