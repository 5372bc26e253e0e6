"""The default key store: one JSON file in a local directory.

``DIR/keyset.json`` (mode 0600, in a directory created 0700) holds the keyset, private keys
included; a keyset file group or others may access is refused (``chmod 600``, or
``S2S_ALLOW_INSECURE_KEY_FILES=1``, see :func:`s2s._files.check_private_file`). Its version is the
SHA-256 of its bytes. :meth:`FileKeyStore.save` is a compare-and-swap under an exclusive
``flock`` on ``DIR/.keyset.lock``; the new content goes to a temporary file in the same directory
that is fsynced and then renamed over the old one, so a writer killed at any instant leaves
either the previous or the new keyset, never a partial one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from s2s._files import check_private_file, exclusive_lock, write_atomic
from s2s.errors import ConfigError, VersionConflict
from s2s.keys._model import KeySet
from s2s.keys.errors import KeyStoreError

__all__ = ["FileKeyStore"]

_FILE = "keyset.json"
_LOCK = ".keyset.lock"
_TMP_PREFIX = ".keyset."
_TMP_SUFFIX = ".tmp"


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileKeyStore:
    """A keyset in ``directory/keyset.json``; safe for several processes on one machine."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / _FILE
        self.url = f"file://{self.directory}"

    def __repr__(self) -> str:
        return f"FileKeyStore({str(self.directory)!r})"

    def load(self) -> tuple[KeySet, str | None]:
        data = self._read()
        if data is None:
            return KeySet(), None
        return self._parse(data), _version(data)

    def save(self, keyset: KeySet, expected_version: str | None) -> str:
        data = json.dumps(keyset.to_document(), indent=2, sort_keys=True).encode() + b"\n"
        self._ensure_directory()
        with self._locked():
            current = self._read()
            found = None if current is None else _version(current)
            if found != expected_version:
                raise VersionConflict(f"{self.url}: the keyset changed since it was read; reload and retry")
            self._remove_stale_temporaries()
            self._replace(data)
        return _version(data)

    def _read(self) -> bytes | None:
        check_private_file(self.path, KeyStoreError)
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise KeyStoreError(f"{self.path} is a directory, not a keyset file") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.path}: {exc.strerror or type(exc).__name__}") from None

    def _parse(self, data: bytes) -> KeySet:
        # Messages name the file and the kind of damage only: the content holds private keys.
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeyStoreError(f"{self.path} is corrupt (not valid JSON)") from None
        try:
            return KeySet.from_document(doc)
        except ConfigError as exc:
            raise KeyStoreError(f"{self.path} is not a valid keyset: {exc.description}") from None

    def _ensure_directory(self) -> None:
        if self.directory.is_dir():
            return
        try:
            self.directory.mkdir(parents=True, mode=0o700)
            # mkdir's mode is filtered by the umask; the directory must still be private.
            os.chmod(self.directory, 0o700)
        except FileExistsError:
            if not self.directory.is_dir():
                raise KeyStoreError(f"{self.directory} exists and is not a directory") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot create {self.directory}: {exc.strerror}") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(exclusive_lock(self.directory / _LOCK))
            except OSError as exc:
                raise KeyStoreError(f"cannot open the lock in {self.directory}: {exc.strerror}") from None
            yield

    def _remove_stale_temporaries(self) -> None:
        # Temporaries are only written under the lock, so any found now belong to a dead writer.
        for stale in self.directory.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                stale.unlink()

    def _replace(self, data: bytes) -> None:
        try:
            write_atomic(self.path, data, tmp_prefix=_TMP_PREFIX, tmp_suffix=_TMP_SUFFIX)
        except OSError as exc:
            raise KeyStoreError(f"cannot write {self.path}: {exc.strerror or type(exc).__name__}") from None
