"""The verified-token cache: a token verified once costs a dictionary lookup until it expires.

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
from collections import OrderedDict
from typing import NamedTuple, Protocol

from s2s.clock import Clock
from s2s.verify.principal import Principal

__all__ = ["CacheEntry", "KeyPresence", "VerifiedTokenCache"]


class KeyPresence(Protocol):
    def fresh_key(self, kid: str) -> object | None: ...


class CacheEntry(NamedTuple):
    principal: Principal
    valid_until: float
    source: KeyPresence
    kid: str
    key: object
    tag: object


class VerifiedTokenCache:
    def __init__(self, clock: Clock, max_entries: int = 4096) -> None:
        self._clock = clock
        self._max = max(0, max_entries)
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, tag: object = None) -> CacheEntry | None:
        """``tag`` separates kinds of verification (access token vs ID token) sharing one cache."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if (
            entry.tag is not tag
            or self._clock.now() >= entry.valid_until
            or entry.source.fresh_key(entry.kid) is not entry.key
        ):
            self._entries.pop(token, None)
            return None
        # Removed by another thread meanwhile: the entry read is still valid.
        with contextlib.suppress(KeyError):
            self._entries.move_to_end(token)
        return entry

    def put(
        self,
        token: str,
        principal: Principal,
        valid_until: float,
        *,
        source: KeyPresence,
        kid: str,
        key: object,
        tag: object = None,
    ) -> None:
        if self._max == 0:
            return
        entries = self._entries
        # Each OrderedDict operation is atomic; the lock only keeps two threads from both
        # evicting for one insertion, so an insertion below the bound takes no lock.
        entries[token] = CacheEntry(principal, valid_until, source, kid, key, tag)
        if len(entries) > self._max:
            with self._lock, contextlib.suppress(KeyError):  # emptied meanwhile by get()
                while len(entries) > self._max:
                    entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
