"""Errors the ``s2s`` command raises itself (each ends the command with one ``s2s: error:`` line)::

    S2SError
    ├── KeysetExists        ``keys init`` on a store that already holds keys
    ├── EmptyKeyset         a keys command on a store that holds none
    └── KmsDeletionFailed   ``keys prune`` dropped records whose KMS keys could not be scheduled

Everything else a command meets is the library's own error (``ConfigError``, ``KeyStoreError``,
``RotationRefused``, ``RegistryError``, ``SecretError``...), shown the same way.
"""

from __future__ import annotations

from s2s.errors import S2SError

__all__ = ["EmptyKeyset", "KeysetExists", "KmsDeletionFailed"]


class KeysetExists(S2SError):
    """The store already holds keys."""

    error = "keyset_exists"


class KmsDeletionFailed(S2SError):
    """A pruned key's KMS key could not be scheduled for deletion."""

    error = "kms_deletion_failed"


class EmptyKeyset(S2SError):
    """The store holds no keys."""

    error = "empty_keyset"
