"""The verified-token cache: a token that comes back costs a dictionary lookup until it expires.

A token is cached on its SECOND verification, not its first: the first only records the token's
hash in a bounded table of plain integers. A service
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
from collections import OrderedDict
from typing import NamedTuple, Protocol

from s2s.clock import Clock
from s2s.verify._config import RevocationCheck
from s2s.verify._principal import Principal

__all__ = ["CacheEntry", "KeyPresence", "VerifiedTokenCache"]


class KeyPresence(Protocol):
    issuer: str  # the configured issuer (a metrics label)

    def fresh_key(self, kid: str) -> object | None: ...


class CacheEntry(NamedTuple):
    principal: Principal
    valid_until: float
    source: KeyPresence
    kid: str
    key: object
    # The issuer's revocation hook: a hit is served only after asking it again.
    revocation: RevocationCheck | None


class VerifiedTokenCache:
    def __init__(self, clock: Clock, max_entries: int = 4096) -> None:
        self._clock = clock
        self._max = max(0, max_entries)
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        # Hashes of tokens verified once and not cached yet, oldest first. An OrderedDict: a plain
        # dict emptied from the front walks its deleted slots on every eviction (~2.7 µs at 4096).
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> CacheEntry | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self._clock.now() >= entry.valid_until or entry.source.fresh_key(entry.kid) is not entry.key:
            self._entries.pop(token, None)
            return None
        # try, not contextlib.suppress: this is every cache hit, and suppress costs three Python
        # calls (~0.4 µs, a fifth of a hit). Removed by another thread meanwhile: the entry is valid.
        try:  # noqa: SIM105
            self._entries.move_to_end(token)
        except KeyError:
            pass
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
        revocation: RevocationCheck | None = None,
    ) -> None:
        if self._max == 0:
            return
        seen = self._seen
        digest = hash(token)
        if seen.pop(digest, _ABSENT) is _ABSENT:
            # First sight: remember it came; it is cached if it comes back.
            seen[digest] = None
            if len(seen) > self._max:
                with contextlib.suppress(KeyError):  # emptied meanwhile by another thread
                    seen.popitem(last=False)
            return
        entries = self._entries
        # Each OrderedDict operation is atomic; the lock only keeps two threads from both
        # evicting for one insertion, so an insertion below the bound takes no lock.
        entries[token] = CacheEntry(principal, valid_until, source, kid, key, revocation)
        if len(entries) > self._max:
            with self._lock, contextlib.suppress(KeyError):  # emptied meanwhile by get()
                while len(entries) > self._max:
                    entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._seen.clear()


_ABSENT = object()
