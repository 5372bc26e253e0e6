"""A bounded worker pool, with a deadline, for the token endpoint's blocking calls.

When the issuer's state store (DynamoDB), client registry (Secrets Manager) or signer (KMS) does
network I/O, a token request must not run it on the event loop: one hung dependency would stall
every request of the replica, ``/health`` and the JWKS included. Such an issuer handles each token
request in this pool. It is bounded twice: ``workers`` threads, and at most ``limit`` requests
running or queued (past that, ``503`` at once); and a caller waits at most ``deadline`` seconds
(about the AWS read timeout) before it gets ``503 temporarily_unavailable`` + ``Retry-After``. A
request that times out before a worker picked it up is dropped, not run late.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from s2s.issuer.errors import TemporarilyUnavailable

__all__ = ["BlockingPool"]

T = TypeVar("T")


class BlockingPool:
    def __init__(self, workers: int = 16, *, deadline: float = 3.0, limit: int | None = None) -> None:
        if workers < 1 or deadline <= 0:
            raise ValueError("workers must be >= 1 and deadline > 0")
        self.workers = workers
        self.deadline = deadline
        self.limit = limit or 4 * workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s2s-io")
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Calls running or queued now."""
        return self._pending

    async def __call__(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._pending >= self.limit:
                raise TemporarilyUnavailable("the issuer is waiting on its dependencies; try again")
            self._pending += 1
        abandoned = threading.Event()

        def run() -> T:
            try:
                if abandoned.is_set():
                    raise TemporarilyUnavailable()  # its caller has had its answer already
                return fn()
            finally:
                with self._lock:
                    self._pending -= 1

        future = asyncio.get_running_loop().run_in_executor(self._executor, run)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.deadline)
        except TimeoutError:
            abandoned.set()
            # The thread may still be blocked in a call; its result is dropped.
            future.add_done_callback(_consume)
            raise TemporarilyUnavailable("a dependency of the issuer is not answering; try again") from None

    def close(self) -> None:
        """Stop taking work; threads blocked in a call finish on their own (bounded by timeouts)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log "exception never retrieved"
