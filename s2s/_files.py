"""Private files written safely: an exclusive lock between processes, and atomic replacement.

Used by the file key store and the file client registry. ``fcntl`` is imported when a lock is
first taken, not at import time, so modules that merely mention a file store still import on
platforms without it (Windows, for a caller-only service).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from s2s.errors import ConfigError

__all__ = ["ALLOW_INSECURE_ENV", "check_private_file", "exclusive_lock", "fsync_directory", "write_atomic"]

# As ssh does with a private key, a key file others can read is refused, unless this says "1".
ALLOW_INSECURE_ENV = "S2S_ALLOW_INSECURE_KEY_FILES"


def check_private_file(path: Path, error: Callable[[str], Exception] = ConfigError) -> None:
    """Refuse ``path`` (raise ``error(one line)``) when group or others may read or write it:
    keysets, client registries and the state file hold secrets or their hashes. A missing file
    passes (it will be created 0600). ``S2S_ALLOW_INSECURE_KEY_FILES=1`` lifts the check."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError:
        return  # unreadable: the caller's own read reports it
    if stat.S_ISREG(mode) and mode & 0o077 and os.environ.get(ALLOW_INSECURE_ENV) != "1":
        raise error(
            f"{path} is accessible by group or others (mode {mode & 0o777:o}): run `chmod 600 {path}` "
            f"(or set {ALLOW_INSECURE_ENV}=1 to allow it)"
        )


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600) for the ``with`` block.

    flock (not lockf) so that threads of one process exclude each other too: the lock belongs to
    the open file description, and each call opens its own. The kernel drops it when a killed
    holder's descriptors close. Raises :class:`OSError` when the lock file cannot be opened.
    """
    import fcntl  # noqa: PLC0415 - POSIX only; see the module docstring

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, tmp_prefix: str, tmp_suffix: str = ".tmp") -> None:
    """Replace ``path`` with ``data``: a 0600 temporary in the same directory, fsynced, renamed over
    ``path``, then the directory fsynced. A writer killed at any instant leaves the old or the new
    content, never a partial one (a left-over temporary at worst). Raises :class:`OSError`."""
    tmp = path.with_name(f"{tmp_prefix}{secrets.token_hex(8)}{tmp_suffix}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # the umask may have narrowed the mode; it must not widen it
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable: without it a power cut may bring back the old file."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
