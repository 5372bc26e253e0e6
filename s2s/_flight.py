"""Single-flight: one call per key in flight, every other caller for that key waits for its outcome.

Written once, in two flavours of the same small API, for whatever must not be asked twice at once:
a JWKS refetch (:mod:`s2s.verify._jwks`), a token request, an MSAL call.

* :class:`SingleFlight` (threads): :meth:`~SingleFlight.do` runs ``fn`` in the calling thread when
  no call for ``key`` is in flight (the *leader*), else waits for the leader's result or exception
  (a *joiner*), at most ``timeout`` seconds when given. :meth:`~SingleFlight.start` runs ``fn`` in
  a new daemon thread unless a call is in flight, and returns at once (a background refresh).
* :class:`AsyncSingleFlight` (asyncio): the same, with ``fn`` a coroutine function run as a task.
  A caller that is cancelled, or whose ``timeout`` ends, stops waiting; the shared call goes on for
  the others (it is shielded), and its result is never lost to a cancellation.

The outcome goes to the callers that waited for it, never to later ones: the next caller after the
call ended starts a new one (caching results is the caller's business). ``joined`` counts callers
that waited instead of calling, for metrics and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

__all__ = ["AsyncSingleFlight", "FlightTimeout", "SingleFlight"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class FlightTimeout(TimeoutError):
    """A joiner stopped waiting for the call in flight (the call itself goes on)."""


class _Call(Generic[T]):
    __slots__ = ("done", "error", "ok", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[K, T]):
    """Thread flavour. Thread-safe; ``fn`` runs without any lock held."""

    def __init__(self, name: str = "s2s-flight") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._calls: dict[K, _Call[T]] = {}
        self.joined = 0

    def in_flight(self, key: K) -> bool:
        return key in self._calls

    def _join_or_lead(self, key: K) -> tuple[_Call[T], bool]:
        with self._lock:
            call = self._calls.get(key)
            if call is not None:
                self.joined += 1
                return call, False
            call = self._calls[key] = _Call()
            return call, True

    def _run(self, key: K, call: _Call[T], fn: Callable[[], T]) -> None:
        try:
            call.result = fn()
            call.ok = True
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                if self._calls.get(key) is call:
                    del self._calls[key]
            call.done.set()

    def do(self, key: K, fn: Callable[[], T], *, timeout: float | None = None) -> T:
        """``fn()``'s result, from this call or the one in flight for ``key``."""
        call, leader = self._join_or_lead(key)
        if leader:
            self._run(key, call, fn)
        elif not call.done.wait(timeout):
            raise FlightTimeout(f"the call in flight did not end within {timeout:g} s")
        if call.ok:
            return cast(T, call.result)
        if isinstance(call.error, Exception):
            raise call.error
        raise FlightTimeout("the call in flight was interrupted")

    def start(self, key: K, fn: Callable[[], T]) -> bool:
        """Run ``fn`` in a daemon thread unless a call for ``key`` is in flight; True if started."""
        with self._lock:
            if key in self._calls:
                return False
            call = self._calls[key] = _Call[T]()

        def run() -> None:
            # The outcome is for whoever waits on the call; fn reports its own failures.
            with contextlib.suppress(Exception):
                self._run(key, call, fn)

        threading.Thread(target=run, name=self._name, daemon=True).start()
        return True

    def wait(self, key: K, timeout: float | None = None) -> bool:
        """Wait until no call for ``key`` is in flight (tests, shutdown); False on timeout."""
        call = self._calls.get(key)
        return call is None or call.done.wait(timeout)


class AsyncSingleFlight(Generic[K, T]):
    """asyncio flavour. One event loop; ``fn()`` runs as a task shared by its callers."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[T]] = {}
        self.joined = 0

    def in_flight(self, key: K) -> bool:
        task = self._tasks.get(key)
        return task is not None and not task.done()

    def _task(self, key: K, fn: Callable[[], Awaitable[T]]) -> tuple[asyncio.Task[T], bool]:
        task = self._tasks.get(key)
        # A task of an event loop that is gone (asyncio.run() per call in a script) is not joined.
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            return task, False

        async def run() -> T:
            return await fn()

        task = asyncio.ensure_future(run())
        self._tasks[key] = task

        def forget(done: asyncio.Task[T]) -> None:
            if self._tasks.get(key) is done:
                del self._tasks[key]
            if not done.cancelled():
                done.exception()  # retrieved: a failed background call is not "never retrieved"

        task.add_done_callback(forget)
        return task, True

    async def do(self, key: K, fn: Callable[[], Awaitable[T]], *, timeout: float | None = None) -> T:
        """``await fn()``'s result, from this call or the one in flight for ``key``."""
        task, leader = self._task(key, fn)
        if not leader:
            self.joined += 1
        # shield: a cancelled caller must not cancel the call the others are waiting for.
        if timeout is None:
            return await asyncio.shield(task)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(task)
        except TimeoutError:
            if task.done():
                raise
            raise FlightTimeout(f"the call in flight did not end within {timeout:g} s") from None

    def start(self, key: K, fn: Callable[[], Awaitable[T]]) -> bool:
        """Start ``fn()`` as a task unless a call for ``key`` is in flight; True if started."""
        return self._task(key, fn)[1]

    async def wait(self, key: K) -> None:
        """Wait until no call for ``key`` is in flight (tests, shutdown); never raises its error."""
        task = self._tasks.get(key)
        if task is not None:
            await asyncio.wait({task})
