"""The key store protocol: load a keyset with its version, save it with a compare-and-swap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from s2s.errors import ConfigError, VersionConflict
from s2s.keys._model import KeySet

__all__ = ["KeyStore", "VersionConflict", "open_keystore", "update_keyset"]


@runtime_checkable
class KeyStore(Protocol):
    url: str

    def load(self) -> tuple[KeySet, str | None]:
        """The keyset and an opaque version (``None`` when the store is empty)."""
        ...

    def save(self, keyset: KeySet, expected_version: str | None) -> str:
        """Write ``keyset`` only if the store is still at ``expected_version``; return the new version.

        Raises :class:`VersionConflict` when someone else wrote in between.
        """
        ...


def update_keyset(store: KeyStore, change: Callable[[KeySet], KeySet], attempts: int = 5) -> KeySet:
    """Apply ``change`` with optimistic concurrency: reload and reapply on a conflict."""
    for _ in range(attempts):
        keyset, version = store.load()
        new = change(keyset)
        if new == keyset and version is not None:
            return keyset
        try:
            store.save(new, version)
        except VersionConflict:
            continue
        return new
    raise VersionConflict(f"{store.url}: gave up after {attempts} concurrent changes")


def open_keystore(url: str) -> KeyStore:
    """``file://PATH`` (or a bare path) or ``aws-sm://SECRET_NAME``."""
    # Imported on demand: the core must load without the adapters' optional dependencies.
    if url.startswith("aws-sm://"):
        from s2s.keys._aws_sm import SecretsManagerKeyStore  # noqa: PLC0415

        return SecretsManagerKeyStore.from_url(url)
    if url.startswith("file://") or "://" not in url:
        from s2s.keys._filestore import FileKeyStore  # noqa: PLC0415

        return FileKeyStore(url.removeprefix("file://") or ".")
    raise ConfigError(f"unknown key store {url.split('://', 1)[0]!r}: use file://PATH or aws-sm://NAME")
