"""The root of every s2s error. Each carries a short machine ``error`` code and a ``description``.

::

    S2SError
     ├── ConfigError              the configuration is invalid
     │    └── MissingExtra        an optional dependency is not installed
     └── VersionConflict          a stored document changed since it was read (compare-and-swap
                                  lost: key stores, client registries); reload and retry

Each package has its own ``errors`` module under this root (``s2s.jose.errors``,
``s2s.keys.errors``, ``s2s.verify.errors``, ...). Descriptions name the problem and never carry a
token, a secret or key material.
"""

from __future__ import annotations

__all__ = ["ConfigError", "MissingExtra", "S2SError", "VersionConflict"]


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


class VersionConflict(S2SError):
    """The document changed since it was read; reload and retry."""

    error = "version_conflict"


class MissingExtra(ConfigError):
    """An optional dependency is not installed."""

    error = "missing_extra"

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(f"{module} is not installed: pip install 's2s[{extra}]'")
        self.extra = extra


def require_extra(extra: str, module: str) -> MissingExtra:
    """The error to raise when ``import module`` failed for an optional extra."""
    return MissingExtra(extra, module)
