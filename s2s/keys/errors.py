"""Key store and keyset errors.

::

    S2SError                      (s2s.errors)
     ├── KeyStoreError            the key store could not be read or written
     ├── KeyNotFound              no key has that kid
     └── RotationRefused          the rotation would break verifiers (``safe_at``: when it would not)

A malformed key record or keyset document is a :class:`~s2s.errors.ConfigError`; a JWK that cannot
be loaded is a :class:`~s2s.jose.KeyRejected` where it is met, turned into ConfigError by the
record that holds it. A lost compare-and-swap is the shared :class:`~s2s.errors.VersionConflict`
(key stores and client registries alike). Descriptions never carry key material.
"""

from __future__ import annotations

from s2s.errors import S2SError

__all__ = ["KeyNotFound", "KeyStoreError", "RotationRefused"]


class KeyStoreError(S2SError):
    """The key store could not be read or written."""

    error = "keystore_error"


class KeyNotFound(S2SError):
    """No key has that kid."""

    error = "key_not_found"


class RotationRefused(S2SError):
    """The rotation would break verifiers that have not yet seen the next key."""

    error = "rotation_refused"

    def __init__(self, description: str, safe_at: float | None = None) -> None:
        super().__init__(description)
        self.safe_at = safe_at
