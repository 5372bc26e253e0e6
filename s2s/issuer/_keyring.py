"""The issuer's view of its keyset: loaded at start, reloaded on an interval, optionally rotated.

Every replica runs one :class:`KeyManager`. A rotation written to the store by anyone (the CLI,
another replica's schedule) reaches this replica within one poll interval, without a restart.

Polling: the delay between reloads is drawn from ``[(1 - jitter) * poll_interval, poll_interval]``
(``jitter`` 0.2 by default, the generator injectable). The jitter keeps replicas started together
from hitting the store in lockstep; it only ever shortens the delay, because the rotation policy's
``publish_lead`` and ``previous_keep`` assume a replica sees a change within ``poll_interval``.

Readiness when the store cannot be reached: the replica keeps signing with the keys it last
loaded, and reports not ready (``/ready`` 503) only once its current key *would be past its use*.
With ``L`` the wall time of the last successful load and ``K`` the current key then, that is when

* the schedule has moved on: ``rotate_every > 0``, ``L < due`` and ``now >= due + poll_interval``,
  where ``due = max(K.activated_at + rotate_every, next.created_at + publish_lead)`` is when a
  replica running the schedule promotes the next key, and ``poll_interval`` the grace the policy
  grants a replica to follow a demotion; or
* the blind spot is too long: ``now >= L + previous_keep``. A key demoted by an unscheduled
  rotation (``s2s keys rotate``) right after ``L`` leaves every JWKS ``previous_keep`` later, so
  past that point tokens signed with ``K`` may verify nowhere.

An emptied store (no current key: deleted, wiped, restored from an empty backup, a moto restarted
empty) counts as unreachable, never as "make new keys": a replica that has loaded a keyset keeps
it, logs at ERROR, and goes not ready by the rules above. Keys are created only by ``s2s keys init``
or on a first start with ``create_keys`` (``S2S_CREATE_KEYS``).

While the store answers, ``L`` stays within one poll interval of now and neither condition can
hold: a loaded keyset is authoritative even if its key is overdue (no replica runs the schedule).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from collections.abc import Awaitable, Callable

from s2s.clock import Clock, system_clock
from s2s.errors import S2SError, VersionConflict
from s2s.keys._factories import KeyFactories
from s2s.keys._model import KeySet, SigningKey
from s2s.keys._rotation import RotationPolicy, ensure_keys, safe_at, scheduled_step
from s2s.keys._store import KeyStore
from s2s.observe import HUB, Observer, report_key_changes

__all__ = ["DEFAULT_JITTER", "KeyManager", "Readiness", "unsignable"]

DEFAULT_JITTER = 0.2


class Readiness:
    """Whether the replica should receive traffic, and why not."""

    __slots__ = ("ready", "reason")

    def __init__(self, ready: bool, reason: str = "") -> None:
        self.ready = ready
        self.reason = reason

    def __bool__(self) -> bool:
        return self.ready

    def __repr__(self) -> str:
        return f"Readiness({self.ready}, {self.reason!r})"


log = logging.getLogger("s2s.issuer.keys")


_EMPTIED = "key store is empty or missing"


def unsignable(keyset: KeySet) -> str | None:
    """Why ``keyset`` cannot sign (its current or next key has no private part), or None.

    Each key must name where its private key is: a local private JWK or a KMS key id. A keyset
    whose signer has neither would load, publish a JWKS and fail every token request.
    """
    for key in (keyset.current, keyset.next):
        if key is not None and key.private_jwk is None and not key.kms_key_id:
            return f"key {key.kid} ({key.state}) has neither a private key nor a KMS key id"
    return None


def _detail(exc: BaseException) -> str:
    # S2SError descriptions are written to be safe; other messages are not trusted: type only.
    return exc.description if isinstance(exc, S2SError) else type(exc).__name__


class KeyManager:
    """Holds the current keyset for minting and for the JWKS.

    ``run_rotation``: apply the rotation schedule on every reload and save it with a
    compare-and-swap (a replica that loses the race takes the winner's keyset). The schedule never
    creates a keyset: a store without a current key is not rotated.
    ``create_keys``: an empty store gets its first keys on this process's *first* load (also a CAS
    save); never once a keyset has been loaded.
    ``factories``: how new keys are made (:class:`~s2s.keys.KeyFactories`; by default they follow
    the keyset: KMS keys when it signs with KMS, local keys otherwise). KMS keys made for a save
    that lost the compare-and-swap, and KMS keys that leave the JWKS, are scheduled for deletion.
    ``rng`` and ``jitter``: see the module docstring.
    """

    def __init__(
        self,
        store: KeyStore,
        policy: RotationPolicy,
        *,
        clock: Clock = system_clock,
        run_rotation: bool = True,
        create_keys: bool = True,
        observer: Observer | None = None,
        factories: KeyFactories | None = None,
        rng: random.Random | None = None,
        jitter: float = DEFAULT_JITTER,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.store = store
        self.policy = policy
        self._clock = clock
        self._run_rotation = run_rotation
        self._create_keys = create_keys
        self.observer = observer or HUB
        self._keyset: KeySet | None = None
        self._version: str | None = None
        self._jwks_bytes = b'{"keys":[]}'
        self._listeners: list[Callable[[KeySet], None]] = []
        self._refresh_lock = threading.Lock()
        self.factories = factories or KeyFactories()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._jitter = jitter
        self._loaded_at: float | None = None  # wall time of the last successful load
        self._problem: str | None = None  # why the last reload did not install the store's keyset
        self._save_error: str | None = None  # why the last scheduled rotation was not saved

    # -- state read on every request -----------------------------------------------------------
    @property
    def keyset(self) -> KeySet | None:
        return self._keyset

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def current(self) -> SigningKey | None:
        return self._keyset.current if self._keyset is not None else None

    @property
    def ready(self) -> bool:
        return self.readiness().ready

    @property
    def loaded_at(self) -> float | None:
        """Wall time of the last successful load of the store."""
        return self._loaded_at

    @property
    def problem(self) -> str | None:
        """Why the last reload did not install the store's keyset (None after a good one)."""
        return self._problem

    def usable_until(self) -> float | None:
        """When the current key would be past its use if the store stays unreachable (module doc)."""
        key, keyset, loaded = self.current, self._keyset, self._loaded_at
        if key is None or keyset is None or loaded is None:
            return None
        limit = loaded + self.policy.previous_keep
        if self.policy.rotate_every:
            activated = key.activated_at if key.activated_at is not None else key.created_at
            due = activated + self.policy.rotate_every
            nxt = keyset.next
            if nxt is not None:
                due = max(due, safe_at(nxt, self.policy))
            if loaded < due:
                limit = min(limit, due + self.policy.poll_interval)
        return limit

    def readiness(self) -> Readiness:
        if self.current is None:
            return Readiness(False, self._problem or "no signing key loaded")
        until = self.usable_until()
        if until is not None and self._clock.now() >= until:
            problem = self._problem or "key store unreachable"
            return Readiness(False, f"{problem}; the current key may be past its use")
        return Readiness(True)

    def warnings(self) -> tuple[str, ...]:
        """Problems that do not stop signing yet (a scheduled rotation that could not be saved)."""
        return (self._save_error,) if self._save_error else ()

    @property
    def jwks_bytes(self) -> bytes:
        """The served JWKS document, serialized once per keyset change."""
        return self._jwks_bytes

    def on_change(self, listener: Callable[[KeySet], None]) -> None:
        self._listeners.append(listener)

    # -- loading -------------------------------------------------------------------------------
    def _step(self, keyset: KeySet) -> KeySet:
        now = self._clock.now()
        if keyset.current is None:
            # Only a first start may create keys (module doc: an emptied store never replaces them).
            if self._create_keys and self._keyset is None:
                return ensure_keys(keyset, now, self.policy, self.factories.for_keyset(keyset))
            return keyset
        if self._run_rotation:
            return scheduled_step(keyset, now, self.policy, self.factories.for_keyset(keyset))
        return keyset

    def _emptied(self, keyset: KeySet) -> bool:
        """True (and an ERROR line) when the store lost the keyset this replica signs with."""
        if keyset.current is not None or self.current is None:
            return False
        self.observer.keyset_reload_failed("emptied")
        first = self._problem != _EMPTIED
        self._problem = _EMPTIED
        (log.error if first else log.debug)(
            "key store %s has no signing key any more (emptied, deleted or restored from an old "
            "backup?): keeping the last good keys (%s); restore the keyset, see docs/rotate-keys.md",
            self.store.url,
            self.current.kid,
        )
        return True

    def refresh(self) -> bool:
        """Load (and maybe rotate and save) the keyset. On failure keep the last keys; return False.

        A keyset that cannot sign (its current or next key has neither a private key nor a KMS key
        id) is refused like an unreachable store: the last good keys stay. A scheduled rotation
        that cannot be saved (a read-only store) keeps the loaded keyset, which is what every
        replica and verifier sees, and is reported as such (:meth:`warnings`), not as a failed load.
        """
        with self._refresh_lock:
            try:
                keyset, version = self.store.load()
                loaded_at = self._clock.now()
                if self._emptied(keyset):
                    return False
                refused = unsignable(keyset)
                if refused:
                    self.observer.keyset_reload_failed("refused")
                    problem, self._problem = self._problem, f"keyset refused: {refused}"
                    # Once per episode at ERROR: the store is polled every few seconds.
                    (log.error if problem != self._problem else log.debug)(
                        "keyset in %s refused, keeping the last good keys: %s", self.store.url, refused
                    )
                    return False
                keyset, version = self._apply_step(keyset, version)
                # KMS keys made for a keyset that did not win are scheduled for deletion.
                self.factories.settle(keyset)
            except Exception as exc:
                self.observer.keyset_reload_failed("unreachable")
                # One line, no key material: S2SError descriptions are written to be safe; other
                # messages are not trusted, so only their type is logged.
                detail = _detail(exc)
                self._problem = "key store unreachable"
                log.warning("keyset reload from %s failed, keeping the last keys: %s", self.store.url, detail)
                return False
            self.observer.keyset_loaded(keyset, loaded_at, self.policy)
            self._problem = None
            self._loaded_at = loaded_at
            self._install(keyset, version)
            return True

    def _apply_step(self, keyset: KeySet, version: str | None) -> tuple[KeySet, str | None]:
        """The schedule's change to ``keyset``, saved with a compare-and-swap when there is one."""
        changed = self._step(keyset)
        if changed is keyset or changed == keyset:
            self._save_error = None
            return keyset, version
        try:
            version = self.store.save(changed, version)
        except VersionConflict:
            # Another writer got there first: its keyset is as good as ours.
            return self.store.load()
        except Exception as exc:
            # A read-only or failing store: the loaded keyset stays authoritative (nobody else
            # could save a rotation either); the keys made for the unsaved one are settled away.
            detail = _detail(exc)
            if self._save_error is None:
                log.error("scheduled rotation could not be saved to %s: %s", self.store.url, detail)
            self._save_error = f"scheduled rotation could not be saved: {detail}"
            self.factories.settle(keyset)
            return keyset, version
        self._save_error = None
        report_key_changes(self.observer, keyset, changed, "schedule")
        # A failure is logged; `s2s keys prune` schedules it again later.
        self.factories.retire(keyset, changed)
        return changed, version

    def _install(self, keyset: KeySet, version: str | None) -> None:
        if keyset == self._keyset and version == self._version:
            return
        previous = self.current
        self._jwks_bytes = json.dumps(keyset.jwks(), separators=(",", ":")).encode()
        self._keyset, self._version = keyset, version
        self.observer.readiness(self.ready)
        current = self.current
        if current is not None and (previous is None or previous.kid != current.kid):
            log.info("signing with key %s (%s)", current.kid, current.alg)
        elif current is None:
            log.warning("keyset in %s has no current key: token requests will fail", self.store.url)
        for listener in self._listeners:
            listener(keyset)

    def next_delay(self, *, startup_retry: float = 1.0) -> float:
        """Seconds until the next reload: jittered below ``poll_interval`` (see the module doc)."""
        poll = self.policy.poll_interval
        if self._keyset is None:
            return min(startup_retry, poll)
        return poll * (1.0 - self._jitter * self._rng.random())

    async def run(
        self,
        *,
        startup_retry: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        in_thread: bool = True,
    ) -> None:
        """Reload forever; until the first success, retry every ``startup_retry`` seconds.

        Store I/O runs in a worker thread so a slow store never stalls request handling
        (``in_thread=False`` runs it inline, for tests driving ``sleep`` with a fake clock).
        """
        while True:
            await sleep(self.next_delay(startup_retry=startup_retry))
            if in_thread:
                await asyncio.to_thread(self.refresh)
            else:
                self.refresh()
