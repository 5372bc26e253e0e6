"""Errors of the AWS access layer. Each names the service, the operation and the AWS error code,
never a message text (AWS messages may quote request parameters, i.e. secret values)::

    S2SError
    └── AwsError              an AWS call failed; ``.code`` is the AWS error code (or the exception type)
        ├── AwsUnreachable    no answer: connection refused, timeout (the call may succeed later)
        └── AwsNoCredentials  no AWS credentials were found

Adapters turn these into their own errors (``KeyStoreError``, ``RegistryError``, ``SecretError``,
``StateUnavailable``...), which say what the failure means for them.
"""

from __future__ import annotations

from s2s.errors import S2SError

__all__ = ["AwsError", "AwsNoCredentials", "AwsUnreachable"]


class AwsError(S2SError):
    """An AWS call failed."""

    error = "aws_error"

    def __init__(self, service: str, operation: str, code: str, description: str = "") -> None:
        super().__init__(description or f"{service} {operation} failed: {code}")
        self.service = service
        self.operation = operation
        self.code = code

    @property
    def reason(self) -> str:
        """What went wrong, short enough to end a sentence: the AWS error code."""
        return self.code


class AwsUnreachable(AwsError):
    """AWS could not be reached or did not answer in time."""

    error = "aws_unreachable"


class AwsNoCredentials(AwsError):
    """No AWS credentials were found (environment, profile, instance or container role)."""

    error = "aws_no_credentials"
    reason = "no AWS credentials found"

    def __init__(self, service: str, operation: str) -> None:
        super().__init__(
            service,
            operation,
            "NoCredentials",
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or run with an instance or task role)",
        )
