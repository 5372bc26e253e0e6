"""The issuer's view of its keyset: loaded at start, reloaded on an interval, optionally rotated.

Every replica runs one :class:`KeyManager`. A rotation written to the store by anyone (the CLI,
another replica's schedule) reaches this replica within one poll interval, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable

from s2s.clock import Clock, system_clock
from s2s.errors import S2SError, VersionConflict
from s2s.issuer.metrics import IssuerMetrics
from s2s.keys.model import KeySet, SigningKey
from s2s.keys.rotation import RotationPolicy, ensure_keys, scheduled_step
from s2s.keys.store import KeyStore

__all__ = ["KeyManager"]

log = logging.getLogger("s2s.issuer.keys")


class KeyManager:
    """Holds the current keyset for minting and for the JWKS.

    ``run_rotation``: apply the rotation schedule on every reload and save it with a
    compare-and-swap (a replica that loses the race takes the winner's keyset).
    ``create_keys``: an empty store gets its first keys on start (also a CAS save).
    """

    def __init__(
        self,
        store: KeyStore,
        policy: RotationPolicy,
        *,
        clock: Clock = system_clock,
        run_rotation: bool = True,
        create_keys: bool = True,
        metrics: IssuerMetrics | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self._clock = clock
        self._run_rotation = run_rotation
        self._create_keys = create_keys
        self.metrics = metrics or IssuerMetrics()
        self._keyset: KeySet | None = None
        self._version: str | None = None
        self._jwks_bytes = b'{"keys":[]}'
        self._listeners: list[Callable[[KeySet], None]] = []
        self._refresh_lock = threading.Lock()

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
        return self.current is not None

    @property
    def jwks_bytes(self) -> bytes:
        """The served JWKS document, serialized once per keyset change."""
        return self._jwks_bytes

    def on_change(self, listener: Callable[[KeySet], None]) -> None:
        self._listeners.append(listener)

    # -- loading -------------------------------------------------------------------------------
    def _step(self, keyset: KeySet) -> KeySet:
        now = self._clock.now()
        if self._run_rotation:
            return scheduled_step(keyset, now, self.policy)
        if self._create_keys and len(keyset) == 0:
            return ensure_keys(keyset, now, self.policy)
        return keyset

    def refresh(self) -> bool:
        """Load (and maybe rotate and save) the keyset. On failure keep the last keys; return False."""
        with self._refresh_lock:
            try:
                keyset, version = self.store.load()
                changed = self._step(keyset)
                if changed is not keyset and changed != keyset:
                    try:
                        version = self.store.save(changed, version)
                        keyset = changed
                    except VersionConflict:
                        # Another writer got there first: its keyset is as good as ours.
                        keyset, version = self.store.load()
            except Exception as exc:
                self.metrics.keyset_reload_failures += 1
                # One line, no key material: S2SError descriptions are written to be safe; other
                # messages are not trusted, so only their type is logged.
                detail = exc.description if isinstance(exc, S2SError) else type(exc).__name__
                log.warning("keyset reload from %s failed, keeping the last keys: %s", self.store.url, detail)
                return False
            self.metrics.keyset_reloads += 1
            self._install(keyset, version)
            return True

    def _install(self, keyset: KeySet, version: str | None) -> None:
        if keyset == self._keyset and version == self._version:
            return
        previous = self.current
        self._jwks_bytes = json.dumps(keyset.jwks(), separators=(",", ":")).encode()
        self._keyset, self._version = keyset, version
        self.metrics.keys_ready = self.ready
        current = self.current
        if current is not None and (previous is None or previous.kid != current.kid):
            log.info("signing with key %s (%s)", current.kid, current.alg)
        elif current is None:
            log.warning("keyset in %s has no current key: token requests will fail", self.store.url)
        for listener in self._listeners:
            listener(keyset)

    async def run(self, *, startup_retry: float = 1.0) -> None:
        """Reload forever; until the first success, retry every ``startup_retry`` seconds.

        Store I/O runs in a worker thread so a slow store never stalls request handling.
        """
        while True:
            interval = (
                self.policy.poll_interval if self.ready else min(startup_retry, self.policy.poll_interval)
            )
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.refresh)
