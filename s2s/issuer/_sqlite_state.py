"""Issuer state in one SQLite file (stdlib ``sqlite3``, WAL): the single-machine default.

``S2S_STATE`` unset puts it beside the key store (``keys/state.sqlite3`` for ``file://keys``).
Every issuer process on the host opens the same file, so a used assertion ``jti`` is refused by
all of them, and still after a restart; rate and failure budgets are shared the same way. The
file and its ``-wal`` / ``-shm`` companions are created 0600 (SQLite gives the companions the
main file's mode), in a directory created 0700.

* Replay (``seen_or_add``): one upsert, ``INSERT ... ON CONFLICT DO UPDATE ... WHERE exp <= now``;
  it changed a row exactly when the key was new or expired, atomically across processes.
* Budgets: token buckets on the wall clock (shared by processes, unlike a monotonic clock), each
  read-modify-write in one ``BEGIN IMMEDIATE`` transaction.
* Keys are SHA-256 digests: client ids and ``jti`` values never appear in the file.
* Expired rows (replay entries past ``exp``, buckets full again) are deleted every minute.

Durability: ``synchronous=NORMAL`` in WAL mode survives a crash or kill of any process; a power
loss may lose the last transactions (docs/security.md). Any SQLite failure fails closed with
:class:`~s2s.issuer.errors.StateUnavailable` (the token endpoint answers 503).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from s2s._files import check_private_file
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.issuer._ratelimit import GLOBAL_FAILURES, FailureBudget
from s2s.issuer.errors import StateUnavailable

__all__ = ["SQLiteState"]

log = logging.getLogger("s2s.issuer.state")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS replay (k BLOB PRIMARY KEY, exp REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS replay_exp ON replay (exp)",
    "CREATE TABLE IF NOT EXISTS bucket"
    " (k BLOB PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL, full_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS bucket_full ON bucket (full_at)",
)


def _digest(kind: str, key: str) -> bytes:
    return hashlib.sha256(f"{kind}\0{key}".encode("utf-8", "surrogatepass")).digest()


class SQLiteState:
    """Replay cache and rate limiter in the SQLite file ``path``, shared by processes on one host."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rate: float,
        burst: float,
        clock: Clock = system_clock,
        failures: FailureBudget | None = None,
        purge_interval: float = 60.0,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError("rate must be > 0 and burst >= 1")
        self.path = Path(path)
        self.url = f"sqlite://{self.path}"
        self._budgets = {
            "i": (float(rate), float(burst)),
            "f": (failures or FailureBudget()).rate_burst(),
            "g": (failures or FailureBudget()).global_rate_burst(),
        }
        self._clock = clock
        self._purge_interval = purge_interval
        self._purged_at = -float("inf")
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._connect()  # at startup: a bad path or mode stops the issuer with one clear line

    def __repr__(self) -> str:
        return f"SQLiteState({str(self.path)!r})"

    # -- the connection --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.close(fd)
        except OSError as exc:
            raise ConfigError(f"cannot create the state file {self.path}: {exc.strerror}") from None
        check_private_file(self.path)
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            for statement in _SCHEMA:
                conn.execute(statement)
        except sqlite3.Error as exc:
            conn.close()
            raise ConfigError(f"cannot open the state file {self.path}: {exc}") from None
        self._conn, self._pid = conn, os.getpid()  # a forked worker opens its own connection
        return conn

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except (sqlite3.Error, ConfigError) as exc:
                log.error("SQLite state %s: %s failed: %s", self.path, action, type(exc).__name__)
                raise StateUnavailable() from None

    def _maybe_purge(self, conn: sqlite3.Connection, now: float) -> None:
        tick = self._clock.monotonic()
        if tick - self._purged_at < self._purge_interval:
            return
        self._purged_at = tick
        conn.execute("DELETE FROM replay WHERE exp <= ?", (now,))
        conn.execute("DELETE FROM bucket WHERE full_at <= ?", (now,))

    def purge(self) -> None:
        """Delete every expired row now (normally done once a minute as a side effect)."""
        self._purged_at = -float("inf")
        with self._transaction("purge") as conn:
            self._maybe_purge(conn, self._clock.now())

    def probe(self) -> None:
        """Raise :class:`StateUnavailable` unless the file can take a write lock now (the readiness
        probe): ``BEGIN IMMEDIATE`` then ``ROLLBACK``, nothing written. A lock held elsewhere makes
        it wait (``busy_timeout``), which the readiness monitor counts as not answering."""
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            except (sqlite3.Error, ConfigError) as exc:
                reason = exc.description if isinstance(exc, ConfigError) else type(exc).__name__
                raise StateUnavailable(f"SQLite state {self.path}: {reason}") from None

    # -- replay ----------------------------------------------------------------------------------
    def seen_or_add(self, key: str, expires_at: float) -> bool:
        now = self._clock.now()
        with self._transaction("replay check") as conn:
            self._maybe_purge(conn, now)
            changed = conn.execute(
                "INSERT INTO replay (k, exp) VALUES (?, ?)"
                " ON CONFLICT (k) DO UPDATE SET exp = excluded.exp WHERE replay.exp <= ?",
                (_digest("j", key), float(expires_at), now),
            ).rowcount
        return changed == 0

    # -- budgets ---------------------------------------------------------------------------------
    def _peek(self, kind: str, key: str) -> float:
        # A plain read (no write lock): the token endpoint peeks on every request.
        rate, burst = self._budgets[kind]
        now = self._clock.now()
        with self._lock:
            try:
                row = (
                    self._connect()
                    .execute("SELECT tokens, at FROM bucket WHERE k = ?", (_digest(kind, key),))
                    .fetchone()
                )
            except (sqlite3.Error, ConfigError) as exc:
                log.error("SQLite state %s: rate limit failed: %s", self.path, type(exc).__name__)
                raise StateUnavailable() from None
        tokens = burst if row is None else min(burst, row[0] + max(0.0, now - row[1]) * rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate

    def _take(self, *buckets: tuple[str, str]) -> float:
        """Take one token from each ``(kind, key)`` bucket in one transaction; the longest wait."""
        now = self._clock.now()
        longest = 0.0
        with self._transaction("rate limit") as conn:
            self._maybe_purge(conn, now)
            for kind, key in buckets:
                rate, burst = self._budgets[kind]
                k = _digest(kind, key)
                row = conn.execute("SELECT tokens, at FROM bucket WHERE k = ?", (k,)).fetchone()
                tokens = burst if row is None else min(burst, row[0] + max(0.0, now - row[1]) * rate)
                if tokens >= 1.0:
                    tokens -= 1.0
                else:
                    longest = max(longest, (1.0 - tokens) / rate)
                conn.execute(
                    "INSERT INTO bucket (k, tokens, at, full_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (k) DO UPDATE SET tokens = excluded.tokens, at = excluded.at,"
                    " full_at = excluded.full_at",
                    (k, tokens, now, now + (burst - tokens) / rate),
                )
        return longest

    def acquire(self, key: str) -> float:
        return self._take(("i", key))

    def failure_wait(self, key: str) -> float:
        return self._peek("f", key)

    def record_failure(self, key: str) -> float:
        return self._take(("f", key), ("g", GLOBAL_FAILURES))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
