"""Single-flight, both flavours: one call per key, every caller gets its outcome, nobody waits for
longer than they asked, and a cancelled caller cancels nothing shared."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from s2s._flight import AsyncSingleFlight, FlightTimeout, SingleFlight


def test_threads_share_one_call_and_its_result() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls: list[int] = []
    release = threading.Event()

    def fn() -> int:
        calls.append(1)
        release.wait(10)
        return 42

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(flight.do("k", fn))) for _ in range(8)]
    for t in threads:
        t.start()
    while flight.joined < 7:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(10)
    assert results == [42] * 8 and len(calls) == 1
    assert not flight.in_flight("k")
    assert flight.do("k", lambda: 7) == 7  # ended: the next caller starts a new call


def test_threads_get_the_leaders_exception_and_joiners_can_stop_waiting() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release = threading.Event()
    errors: list[BaseException] = []

    def failing() -> int:
        release.wait(10)
        raise ValueError("boom")

    def call() -> None:
        try:
            flight.do("k", failing)
        except ValueError as exc:
            errors.append(exc)

    leader = threading.Thread(target=call)
    leader.start()
    while not flight.in_flight("k"):
        time.sleep(0.01)
    with pytest.raises(FlightTimeout):
        flight.do("k", failing, timeout=0.05)
    joiner = threading.Thread(target=call)
    joiner.start()
    while flight.joined < 2:
        time.sleep(0.01)
    release.set()
    leader.join(10)
    joiner.join(10)
    assert len(errors) == 2 and errors[0] is errors[1]


def test_start_runs_in_the_background_once() -> None:
    flight: SingleFlight[str, None] = SingleFlight()
    release = threading.Event()
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        release.wait(10)

    assert flight.start("k", fn) is True
    assert flight.start("k", fn) is False  # one in flight already
    assert flight.in_flight("k") and not flight.wait("k", 0.01)
    release.set()
    assert flight.wait("k", 10)
    assert calls == [1]


def test_asyncio_callers_share_one_task_and_a_cancelled_caller_cancels_nothing() -> None:
    async def go() -> None:
        flight: AsyncSingleFlight[str, int] = AsyncSingleFlight()
        release = asyncio.Event()
        calls: list[int] = []

        async def fn() -> int:
            calls.append(1)
            await release.wait()
            return 42

        first = asyncio.ensure_future(flight.do("k", fn))
        await asyncio.sleep(0)
        impatient = asyncio.ensure_future(flight.do("k", fn))
        await asyncio.sleep(0)
        impatient.cancel()
        with pytest.raises(FlightTimeout):
            await flight.do("k", fn, timeout=0.05)
        others = [asyncio.ensure_future(flight.do("k", fn)) for _ in range(5)]
        await asyncio.sleep(0)
        release.set()
        assert await first == 42 and await asyncio.gather(*others) == [42] * 5
        assert impatient.cancelled() and calls == [1] and flight.joined == 7
        assert not flight.in_flight("k")
        assert flight.start("k", fn) is True and flight.start("k", fn) is False
        await flight.wait("k")
        assert calls == [1, 1]

    asyncio.run(go())


def test_asyncio_task_of_a_finished_event_loop_is_not_joined() -> None:
    flight: AsyncSingleFlight[str, int] = AsyncSingleFlight()

    async def never() -> int:
        await asyncio.sleep(3600)
        return 0

    async def leave_behind() -> None:
        flight.start("k", never)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(leave_behind())
    loop.close()  # the task never ran to its end
    stale = flight._tasks["k"]
    stale._log_destroy_pending = False  # type: ignore[attr-defined]  # dropped on purpose below

    async def fresh() -> int:
        return 5

    async def again() -> int:
        return await flight.do("k", fresh)

    assert asyncio.run(again()) == 5


def test_asyncio_deadline_firing_as_the_call_ends_returns_the_calls_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a busy loop the waiter's deadline and the call's end can land in one iteration: the
    caller gets the call's outcome, never a bare TimeoutError (a verifier turned it into a 401)."""
    import contextlib

    @contextlib.asynccontextmanager
    async def deadline_fires_on_the_way_out(_delay: float):  # type: ignore[no-untyped-def]
        yield
        raise TimeoutError

    flight: AsyncSingleFlight[str, int] = AsyncSingleFlight()

    async def fn() -> int:
        return 7

    async def boom() -> int:
        raise ValueError("the call's own failure")

    async def go() -> None:
        monkeypatch.setattr(asyncio, "timeout", deadline_fires_on_the_way_out)
        assert await flight.do("k", fn, timeout=5) == 7
        with pytest.raises(ValueError, match="own failure"):
            await flight.do("e", boom, timeout=5)

    asyncio.run(go())
