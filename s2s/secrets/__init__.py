"""Secrets from AWS Secrets Manager, and ``aws-sm://`` references in settings."""

from __future__ import annotations

from s2s.secrets._references import (
    SCHEME,
    VERSION_STAGES,
    SecretLocation,
    SecretReference,
    is_reference,
    parse_location,
    parse_reference,
)
from s2s.secrets._resolve import resolve, resolve_env, resolve_settings
from s2s.secrets._source import SecretsManagerSource, SecretSource, SecretValue
from s2s.secrets.errors import (
    InvalidSecretReference,
    SecretAccessDenied,
    SecretError,
    SecretFieldMissing,
    SecretNotFound,
    SecretUnavailable,
)

__all__ = [
    "SCHEME",
    "VERSION_STAGES",
    "InvalidSecretReference",
    "SecretAccessDenied",
    "SecretError",
    "SecretFieldMissing",
    "SecretLocation",
    "SecretNotFound",
    "SecretReference",
    "SecretSource",
    "SecretUnavailable",
    "SecretValue",
    "SecretsManagerSource",
    "is_reference",
    "parse_location",
    "parse_reference",
    "resolve",
    "resolve_env",
    "resolve_settings",
]
