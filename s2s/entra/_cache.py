"""Token cache persistence for MSAL, and the on-behalf-of result cache.

The MSAL cache holds access tokens, so a persisted copy is a secret: :class:`FileTokenCache` writes
it with mode 0600 through an atomic replace.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from s2s.clock import Clock

__all__ = ["FileTokenCache", "MemoryTokenCache", "OboCache", "TokenCachePersistence", "obo_cache_key"]

T = TypeVar("T")


class TokenCachePersistence(Protocol):
    def load(self) -> str | None:
        """The last saved serialized cache, or ``None``."""
        ...

    def save(self, data: str) -> None:
        """Store the serialized cache (it contains tokens: keep it private)."""
        ...


class MemoryTokenCache:
    """Keeps the serialized cache in memory (handy in tests and to share between app objects)."""

    def __init__(self, data: str | None = None) -> None:
        self.data = data
        self.saves = 0

    def __repr__(self) -> str:
        return f"MemoryTokenCache(saves={self.saves})"

    def load(self) -> str | None:
        return self.data

    def save(self, data: str) -> None:
        self.data = data
        self.saves += 1


class FileTokenCache:
    """Persists the serialized cache to a file readable only by its owner."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileTokenCache({str(self.path)!r})"

    def load(self) -> str | None:
        try:
            return self.path.read_text("utf-8")
        except FileNotFoundError:
            return None

    def save(self, data: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokencache-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def obo_cache_key(user_token: str, scopes: Sequence[str]) -> str:
    """sha256 of the incoming token and the sorted scopes: the token itself is never a key."""
    digest = hashlib.sha256(user_token.encode("utf-8"))
    digest.update(b"\0" + " ".join(sorted(scopes)).encode("utf-8"))
    return digest.hexdigest()


class OboCache(Generic[T]):
    """Results by key until ``margin`` seconds before their expiry, at most ``max_entries``."""

    def __init__(self, clock: Clock, *, margin: float = 300.0, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._margin = margin
        self._max = max_entries
        self._items: dict[str, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> T | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if self._clock.now() >= item[0] - self._margin:
                del self._items[key]
                return None
            return item[1]

    def put(self, key: str, value: T, expires_at: float) -> None:
        now = self._clock.now()
        if now >= expires_at - self._margin:
            return
        with self._lock:
            if len(self._items) >= self._max:
                for stale in [k for k, (exp, _) in self._items.items() if now >= exp - self._margin]:
                    del self._items[stale]
                while len(self._items) >= self._max:
                    del self._items[next(iter(self._items))]
            self._items[key] = (expires_at, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
