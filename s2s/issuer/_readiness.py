"""Readiness: whether this replica can issue a token *now*, and why not.

Ready means all of: a signable current key (:meth:`KeyManager.readiness`), the client registry
loaded, and every remote dependency (the DynamoDB state store) answering. Dependencies are probed
in the background by :meth:`ReadinessMonitor.run` — never on the ``/ready`` request itself, so a
hung dependency cannot hang the probe a load balancer sends. A probe that fails, or that has not
answered within ``timeout`` seconds, makes the replica not ready at once; the next probe that
answers makes it ready again, so ``/ready`` follows a dependency within about
``interval + timeout`` seconds both ways.

A dependency the replica can do without for a while is ``degradable`` (the state store under
``S2S_STATE_FAILURE_MODE=local``, :mod:`s2s.issuer._fallback_state`): its failure or hang leaves
the replica ready and is listed in :meth:`ReadinessMonitor.warnings` (the ``/ready`` body) as
``"<name> degraded: <reason>"``; the dependency logs its own outage and recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

from s2s.clock import Clock, system_clock
from s2s.errors import S2SError
from s2s.issuer._keyring import KeyManager, Readiness

__all__ = ["PROBE_TIMEOUT", "ReadinessMonitor"]

log = logging.getLogger("s2s.issuer.ready")

Probe = Callable[[], None]

# Seconds until a probe that has not answered counts as failed (a hung dependency).
PROBE_TIMEOUT = 2.0


@dataclass(slots=True)
class _Status:
    ok: bool = False
    reason: str = "not checked yet"
    started: float | None = None  # monotonic start of the probe in flight


class ReadinessMonitor:
    """The replica's readiness: the keys' own, plus ``probes`` (name -> a call that raises when
    the dependency cannot serve). ``interval`` between probes, ``timeout`` until a probe that has
    not answered counts as failed. Probes named in ``degradable`` only warn (see the module)."""

    def __init__(
        self,
        keys: KeyManager,
        probes: Mapping[str, Probe] | None = None,
        *,
        clock: Clock = system_clock,
        interval: float = 1.0,
        timeout: float = PROBE_TIMEOUT,
        degradable: Collection[str] = (),
    ) -> None:
        self.keys = keys
        self._probes = dict(probes or {})
        self._degradable = frozenset(degradable)
        self._clock = clock
        self.interval = interval
        self.timeout = timeout
        self._status = {name: _Status() for name in self._probes}
        self._lock = threading.Lock()

    def _failing(self, *, degradable: bool) -> list[tuple[str, str]]:
        """``(name, why)`` of each probe (the degradable ones, or the others) that does not pass."""
        now = self._clock.monotonic()
        failing = []
        with self._lock:
            for name, status in self._status.items():
                if (name in self._degradable) != degradable:
                    continue
                if status.started is not None and now - status.started >= self.timeout:
                    failing.append((name, "not answering"))
                elif not status.ok:
                    failing.append((name, status.reason))
        return failing

    def readiness(self) -> Readiness:
        keys = self.keys.readiness()
        if not keys:
            return keys
        reasons = [
            f"{name} {why}" if why == "not answering" else f"{name}: {why}"
            for name, why in self._failing(degradable=False)
        ]
        return Readiness(False, "; ".join(reasons)) if reasons else keys

    def warnings(self) -> tuple[str, ...]:
        """What a ready replica reports beside its readiness: the keys' warnings (a rotation that
        could not be saved) and each degradable dependency it is serving without."""
        degraded = tuple(f"{name} degraded: {why}" for name, why in self._failing(degradable=True))
        return self.keys.warnings() + degraded

    def check(self, name: str) -> None:
        """Run one probe now (in the calling thread) and record its outcome."""
        probe = self._probes[name]
        with self._lock:
            self._status[name].started = self._clock.monotonic()
        try:
            probe()
        except Exception as exc:
            ok, reason = False, exc.description if isinstance(exc, S2SError) else type(exc).__name__
        else:
            ok, reason = True, ""
        with self._lock:
            status = self._status[name]
            if name in self._degradable:
                pass  # a degradable dependency logs its own outage and recovery
            elif status.ok and not ok:
                log.error("not ready: %s: %s", name, reason)
            elif ok and not status.ok and status.reason != "not checked yet":
                log.warning("ready again: %s answers", name)
            status.ok, status.reason, status.started = ok, reason, None

    def check_all(self) -> None:
        for name in self._probes:
            self.check(name)

    async def run(
        self,
        *,
        run_sync: Callable[[Callable[[], None]], Awaitable[None]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Probe forever, each probe in a worker thread; a hung probe is not started twice."""
        runner = run_sync or asyncio.to_thread
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                for name in self._probes:
                    task = tasks.get(name)
                    if task is None or task.done():
                        tasks[name] = asyncio.ensure_future(runner(lambda n=name: self.check(n)))  # type: ignore[misc]
                await sleep(self.interval)
        finally:
            for task in tasks.values():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
