"""Typed errors. Each carries a short machine ``error`` code and a human ``description``.

Descriptions name the problem and never carry a token, a secret or key material.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "KeyNotFound",
    "KeyStoreError",
    "MissingExtra",
    "RotationRefused",
    "S2SError",
    "VersionConflict",
]


class S2SError(Exception):
    error: str = "s2s_error"

    def __init__(self, description: str = "") -> None:
        self.description = description or self.__class__.__doc__ or self.error
        super().__init__(self.description)

    def __str__(self) -> str:
        return self.description


class ConfigError(S2SError):
    """The configuration is invalid."""

    error = "invalid_configuration"


class MissingExtra(ConfigError):
    """An optional dependency is not installed."""

    error = "missing_extra"

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(f"{module} is not installed: pip install 's2s[{extra}]'")
        self.extra = extra


class KeyStoreError(S2SError):
    """The key store could not be read or written."""

    error = "keystore_error"


class VersionConflict(KeyStoreError):
    """The keyset changed since it was read; reload and retry."""

    error = "version_conflict"


class KeyNotFound(S2SError):
    """No key has that kid."""

    error = "key_not_found"


class RotationRefused(S2SError):
    """The rotation would break verifiers that have not yet seen the next key."""

    error = "rotation_refused"

    def __init__(self, description: str, safe_at: float | None = None) -> None:
        super().__init__(description)
        self.safe_at = safe_at


def require_extra(extra: str, module: str) -> MissingExtra:
    """The error to raise when ``import module`` failed for an optional extra."""
    return MissingExtra(extra, module)
