"""One boto3 client factory for every AWS adapter (key stores, KMS signer, secrets).

boto3 is an optional extra: it is imported only when a client is built. The standard AWS
environment applies unchanged (credentials chain, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>``, which boto3 >= 1.28 reads itself), so pointing s2s at moto or
LocalStack needs no s2s-specific setting.
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

from s2s.errors import MissingExtra

__all__ = [
    "DEFAULT_REGION",
    "SecretRecordFilter",
    "aws_client",
    "aws_region",
    "error_code",
    "install_botocore_redaction",
]

DEFAULT_REGION = "us-east-1"

# At DEBUG, botocore logs request parameters (botocore.endpoint) and response bodies
# (botocore.parsers): secret values would reach the log of any app that turns DEBUG on. The
# filter withholds exactly the records that carry them and leaves the rest of botocore's debugging.
_LOGGERS = ("botocore.endpoint", "botocore.parsers", "botocore.hooks", "botocore.auth")
# Secrets Manager values, and KMS Sign inputs/outputs (together they are a usable token).
# Request and response bodies are logged as serialized JSON, so the KMS names appear in double
# quotes there; the single-quoted forms cover parameter dicts.
_MARKERS = ("SecretString", "SecretBinary", "'Message'", '"Message"', "'Signature'", '"Signature"')
_WITHHELD = "[s2s] botocore debug record withheld: it carries a secret value"


class SecretRecordFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot format is not ours to judge
            return True
        if any(marker in text for marker in _MARKERS):
            record.msg, record.args = _WITHHELD, None
        return True


_FILTER = SecretRecordFilter()


def install_botocore_redaction() -> None:
    """Attach the filter to botocore's request/response loggers (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def aws_region(region: str | None = None) -> str:
    """The explicit region, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else us-east-1."""
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def aws_client(service: str, *, region: str | None = None, session: Any | None = None) -> Any:
    """A boto3 client for ``service`` with standard-mode retries.

    ``session`` (a ``boto3.session.Session``) lets callers pick credentials; tests usually inject
    a ready client into the adapter instead of calling this.
    """
    # boto3 is an optional extra, so it is imported only here.
    try:
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415
    except ImportError:
        raise MissingExtra("aws", "boto3") from None
    install_botocore_redaction()
    # "standard" retries throttling and transient errors with backoff, the same on every SDK.
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10)
    # The service name is a runtime string; boto3-stubs only type literal names.
    factory = cast(Any, session if session is not None else boto3.session.Session())
    # A session built with its own region keeps it unless the caller names one.
    region_name = region or (session.region_name if session is not None else None) or aws_region()
    return factory.client(service, region_name=region_name, config=config)
