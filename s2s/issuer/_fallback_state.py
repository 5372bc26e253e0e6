"""``S2S_STATE_FAILURE_MODE=local``: keep issuing while the shared state store is unavailable.

By default (``closed``) a replica whose state store (DynamoDB, SQLite) cannot be reached refuses
token requests (``503`` + ``Retry-After``) and is not ready: no token is issued whose assertion
replay or rate could not be checked. :class:`LocalFallbackState` is the explicit alternative: while
the shared store is unavailable, this replica checks rate limits, failure budgets and assertion
replay in its own memory (an :class:`~s2s.issuer._state.InMemoryState`), stays ready (``/ready`` 200,
its body listing ``state store degraded: ...``) and goes back to the shared store once it answers.

The trade-off, which is why it is opt-in: during an outage those checks are per replica. An
assertion ``jti`` used at one replica can be replayed once at each other replica (within its
lifetime), and each replica grants a client its full rate and failure budgets; entries recorded
only in memory are not copied to the shared store afterwards.

How an outage is noticed and left:

* a call to the shared store that raises :class:`~s2s.issuer.errors.StateUnavailable` (DynamoDB
  timeouts and the AWS circuit breaker, SQLite errors) answers from memory, and later calls skip
  the shared store;
* the readiness probe (every second, in the background) notices it too, also when the store hangs:
  a probe that has not answered within ``probe_timeout`` seconds counts as an outage;
* the next probe that answers ends the outage. Without a probe running (a state with no probe, an
  embedding without the readiness loop), one request in ``trial_interval`` seconds tries the
  shared store again.

One ``WARNING`` when an outage starts and one when it ends (not one per request).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from s2s.clock import Clock, system_clock
from s2s.errors import S2SError
from s2s.issuer._readiness import PROBE_TIMEOUT
from s2s.issuer._state import IssuerState
from s2s.issuer.errors import StateUnavailable

__all__ = ["LocalFallbackState"]

log = logging.getLogger("s2s.issuer.state")

T = TypeVar("T")


class LocalFallbackState:
    """``shared`` while it answers, ``local`` while it does not (see the module)."""

    def __init__(
        self,
        shared: IssuerState,
        local: IssuerState,
        *,
        clock: Clock = system_clock,
        probe_timeout: float = PROBE_TIMEOUT,
        trial_interval: float = 5.0,
    ) -> None:
        self.shared = shared
        self.local = local
        self.url: str = getattr(shared, "url", repr(shared))
        # Only the shared store's calls can block on the network; the pool decision follows it.
        self.blocks_on_io: bool = getattr(shared, "blocks_on_io", False)
        self.probe_timeout = probe_timeout
        self.trial_interval = trial_interval
        self._clock = clock
        self._probe: Callable[[], Any] | None = getattr(shared, "probe", None)
        self._outage: str | None = None  # why the shared store is unavailable, during an outage
        self._since = 0.0
        self._probe_started: float | None = None
        self._last_check = -math.inf  # monotonic end of the last probe, or of the last trial
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalFallbackState({self.shared!r})"

    @property
    def degraded(self) -> str | None:
        """Why this replica is serving from its own memory now, or None."""
        started = self._probe_started
        if (
            self._outage is None
            and started is not None
            and self._clock.monotonic() - started >= self.probe_timeout
        ):
            self._enter("not answering")
        return self._outage

    # -- outage bookkeeping ------------------------------------------------------------------------
    def _enter(self, reason: str) -> None:
        now = self._clock.monotonic()
        with self._lock:
            self._last_check = now  # a failed call is as good a check as a probe
            if self._outage is not None:
                return
            self._outage, self._since = reason, now
        log.warning(
            "state store %s unavailable (%s): checking rate limits, failure budgets and assertion "
            "replay in this replica's memory until it answers (S2S_STATE_FAILURE_MODE=local)",
            self.url,
            reason,
        )

    def _leave(self) -> None:
        with self._lock:
            if self._outage is None:
                return
            self._outage = None
            lasted = self._clock.monotonic() - self._since
        log.warning("state store %s answers again after %.0fs: back to the shared state", self.url, lasted)

    def _use_shared(self) -> bool:
        if self.degraded is None:
            return True
        now = self._clock.monotonic()
        with self._lock:
            if self._probe_started is not None or now - self._last_check < self.trial_interval:
                return False  # a probe under way (or a recent one) is the trial
            self._last_check = now  # this request is the trial
            return True

    def _run(self, call: Callable[[IssuerState], T]) -> T:
        if self._use_shared():
            try:
                result = call(self.shared)
            except StateUnavailable as exc:
                self._enter(exc.description)
            else:
                self._leave()
                return result
        return call(self.local)

    # -- IssuerState ---------------------------------------------------------------------------------
    def seen_or_add(self, key: str, expires_at: float) -> bool:
        return self._run(lambda state: state.seen_or_add(key, expires_at))

    def acquire(self, key: str) -> float:
        return self._run(lambda state: state.acquire(key))

    def failure_wait(self, key: str) -> float:
        return self._run(lambda state: state.failure_wait(key))

    def record_failure(self, key: str) -> float:
        return self._run(lambda state: state.record_failure(key))

    # -- readiness -----------------------------------------------------------------------------------
    def probe(self) -> None:
        """The shared store's probe; its failure starts an outage (and is raised, for the readiness
        monitor to list as degraded), its success ends one."""
        if self._probe is None:
            if self._outage is not None:
                raise StateUnavailable(self._outage)
            return
        self._probe_started = self._clock.monotonic()
        try:
            self._probe()
        except S2SError as exc:
            self._enter(exc.description)
            raise
        except Exception as exc:
            self._enter(type(exc).__name__)
            raise
        else:
            self._leave()
        finally:
            self._probe_started = None
            with self._lock:
                self._last_check = self._clock.monotonic()
