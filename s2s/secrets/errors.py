"""Secret errors. Each names the reference that failed and never carries the secret's value::

S2SError
└── ConfigError
    └── SecretError                 a secret could not be read
        ├── InvalidSecretReference  not a valid ``aws-sm://`` reference or location
        ├── SecretNotFound          no such secret, or no version with that stage or id
        ├── SecretFieldMissing      not JSON, or no such field
        ├── SecretAccessDenied      not allowed to read or decrypt it, or no AWS credentials
        └── SecretUnavailable       Secrets Manager unreachable or answering an unexpected error
"""

from __future__ import annotations

from s2s.errors import ConfigError

__all__ = [
    "InvalidSecretReference",
    "SecretAccessDenied",
    "SecretError",
    "SecretFieldMissing",
    "SecretNotFound",
    "SecretUnavailable",
]


class SecretError(ConfigError):
    """A secret could not be read.

    A subclass of :class:`~s2s.errors.ConfigError` because a setting that points at a secret nobody
    can read is a configuration problem: startup stops with this one line.
    """

    error = "secret_error"

    def __init__(self, reference: str, problem: str) -> None:
        super().__init__(f"{reference}: {problem}")
        self.reference = reference
        self.problem = problem


class InvalidSecretReference(SecretError):
    """The text is not a valid ``aws-sm://`` reference."""

    error = "invalid_secret_reference"


class SecretNotFound(SecretError):
    """No such secret, or no version with that stage or id."""

    error = "secret_not_found"


class SecretFieldMissing(SecretError):
    """The secret exists but is not JSON or has no such field."""

    error = "secret_field_missing"


class SecretAccessDenied(SecretError):
    """The caller may not read (or decrypt) the secret."""

    error = "secret_access_denied"


class SecretUnavailable(SecretError):
    """Secrets Manager could not be reached or answered with an unexpected error."""

    error = "secret_unavailable"
