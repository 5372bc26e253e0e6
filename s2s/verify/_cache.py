"""The verified-token cache: a token that comes back costs a dictionary lookup until it expires.

A token is cached on its SECOND verification, not its first: the first only records the token's
hash in a direct-mapped table of machine integers (one slot per hash, a newer token taking an
older one's slot; an array, not a dict: one memory access in 8 bytes per slot, where a
4096-entry dict of first sights cost a cold token more than its claims check). A service
whose callers reuse their tokens pays one extra verification per token; in exchange a stream of
tokens seen once (new callers, a token per request) costs no cache entry, no eviction and no
long-lived objects for the collector to walk, and cannot push the tokens that do come back out of
the cache. Measured in ``bench/verify_bench.py``.

Bounded LRU keyed by the token string itself (it is already in memory for the request; the cache
is never logged nor exposed). An entry is served only while

* the clock is before its ``valid_until`` (the token's ``exp``, or earlier when a max token age
  applies), and
* the key that verified it (that very key, not merely its kid) is still in its issuer's key set
  and that key set is within its TTL. When the TTL has run out the entry is not served: the full
  path runs and refetches the JWKS, so a key removed from the JWKS, or replaced under the same
  kid, stops its tokens even when callers keep reusing them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from s2s.clock import Clock, SystemClock
from s2s.observe import HUB, Observer
from s2s.verify._config import RevocationCheck
from s2s.verify._principal import Principal

__all__ = ["CacheEntry", "KeyPresence", "KeySet", "VerifiedTokenCache"]


class KeySet(Protocol):
    @property
    def expires_at(self) -> float: ...  # on the clock's monotonic scale


class KeyPresence(Protocol):
    issuer: str  # the configured issuer (a metrics label)

    # The current key set, replaced (never changed) by each fetch. Read on every hit, where a
    # property would cost a Python call: the JWKS sources of this package keep it as an attribute.
    @property
    def _snapshot(self) -> KeySet | None: ...

    def fresh_key(self, kid: str) -> object | None: ...


@dataclass(slots=True)
class CacheEntry:
    # Slots, not a NamedTuple: a hit reads several fields, and a slot is read without the
    # generic attribute lookup a NamedTuple's field descriptor takes.
    principal: Principal
    valid_until: float
    source: KeyPresence
    kid: str
    key: object
    # The issuer's revocation hook: a hit is served only after asking it again.
    revocation: RevocationCheck | None
    # The key set in which `key` was last found under `kid`: while it is still the source's
    # current and fresh set, the key is still there (a set is never changed, only replaced).
    key_set: KeySet | None = None


class VerifiedTokenCache:
    def __init__(
        self,
        clock: Clock,
        max_entries: int = 4096,
        *,
        observer: Observer = HUB,
    ) -> None:
        # The system clock is read directly on every hit (no Python frame in between).
        system = type(clock) is SystemClock
        self._now = time.time if system else clock.now
        self._monotonic = time.monotonic if system else clock.monotonic
        # Told of every principal() hit, as `verified(issuer, None, True)`: looked up per hit, not
        # bound once, since what handles it changes as observers are installed.
        self._observer = observer
        self._max = max(0, max_entries)
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        # Hashes of tokens verified once and not cached yet, at slot hash & mask (see above).
        self._seen_mask = (1 << max(3, (self._max - 1).bit_length())) - 1
        self._seen = _no_sights(self._seen_mask + 1)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def principal(self, token: str) -> Principal | None:
        """The principal of ``token`` when its entry is valid now and its issuer has no revocation
        hook (a hit, reported to the observer); None when the full path must run. The hot path of a
        service whose callers reuse their tokens: one call, no coroutine, no I/O."""
        entry = self._entries.get(token)
        if entry is None or entry.revocation is not None:
            return None  # a revocable entry: the verifier asks the hook first (see get())
        key_set = entry.key_set
        # The usual hit, decided inline: unexpired, and the key set it was checked in is still
        # the current one and fresh. Anything else: the full rule (_valid).
        if not (
            self._now() < entry.valid_until
            and entry.source._snapshot is key_set
            and key_set is not None
            and self._monotonic() < key_set.expires_at
        ) and not self._valid(token, entry):
            return None
        # try, not contextlib.suppress: this is every cache hit, and suppress costs three Python
        # calls. Removed by another thread meanwhile: the entry is valid.
        try:  # noqa: SIM105
            self._entries.move_to_end(token)
        except KeyError:
            pass
        self._observer.verified(entry.source.issuer, None, True)
        return entry.principal

    def get(self, token: str) -> CacheEntry | None:
        """The entry of ``token`` when it is valid now (whatever its revocation hook will say)."""
        entry = self._entries.get(token)
        if entry is None or not self._valid(token, entry):
            return None
        try:  # noqa: SIM105 - see principal()
            self._entries.move_to_end(token)
        except KeyError:
            pass
        return entry

    def _valid(self, token: str, entry: CacheEntry) -> bool:
        """The rule: unexpired, and the very key that verified it is still under its kid in its
        issuer's fresh key set (a refetched set that still has it renews the entry). An invalid
        entry is dropped."""
        if self._now() < entry.valid_until:
            key_set = entry.source._snapshot
            if entry.source.fresh_key(entry.kid) is entry.key:
                entry.key_set = key_set
                return True
        self._entries.pop(token, None)
        return False

    def put(
        self,
        token: str,
        principal: Principal,
        valid_until: float,
        *,
        source: KeyPresence,
        kid: str,
        key: object,
        revocation: RevocationCheck | None = None,
    ) -> None:
        if self._max == 0:
            return
        seen = self._seen
        digest = hash(token)
        slot = digest & self._seen_mask
        if seen[slot] != digest:
            # First sight (or its slot was taken since): remember it; cached if it comes back.
            # Races between threads only move a token's caching by one sight either way.
            seen[slot] = digest
            return
        seen[slot] = 0
        entries = self._entries
        # Each OrderedDict operation is atomic; the lock only keeps two threads from both
        # evicting for one insertion, so an insertion below the bound takes no lock.
        # No key set yet: the first hit checks the key itself (_valid) and records the set it
        # found it in. Recording the current set here could name a set fetched since the
        # flow looked the key up (another thread), one that may not have it.
        entries[token] = CacheEntry(principal, valid_until, source, kid, key, revocation)
        if len(entries) > self._max:
            with self._lock, contextlib.suppress(KeyError):  # emptied meanwhile by get()
                while len(entries) > self._max:
                    entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._seen = _no_sights(self._seen_mask + 1)


def _no_sights(slots: int) -> array[int]:
    # Zero is "no token": a token whose hash is 0 is cached on its first sight, which only
    # spares it one verification.
    return array("q", bytes(8 * slots))
