"""The boto3 client factory, its settings, and the one seam every AWS call goes through.

boto3 is an optional extra: it is imported only when a client is built. The standard AWS
environment applies unchanged (credentials chain, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>``, which boto3 >= 1.28 reads itself), so pointing s2s at moto or
LocalStack needs no s2s-specific setting.

Timeouts and retries are tight by default (:class:`AwsSettings`: 1 s to connect, 2 s to read, 3
attempts): a token service must answer "try again" quickly rather than hang on a slow dependency.

Every call an adapter makes goes through :meth:`AwsService.call`: it turns botocore's exceptions
into :mod:`s2s.aws.errors` (codes only, never message texts), and it is the place where a circuit
breaker (fail fast after repeated failures) and off-event-loop execution plug in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from s2s.aws.errors import AwsError, AwsNoCredentials, AwsUnreachable
from s2s.errors import ConfigError, MissingExtra

__all__ = [
    "DEFAULT_REGION",
    "AwsService",
    "AwsSettings",
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
    """The AWS error code of a botocore ``ClientError`` or an :class:`AwsError` (``""`` otherwise)."""
    if isinstance(exc, AwsError):
        return exc.code
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def aws_region(region: str | None = None) -> str:
    """The explicit region, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else us-east-1."""
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """How long an AWS call may take, and how often it is tried.

    ``connect_timeout`` and ``read_timeout`` are seconds per attempt; ``max_attempts`` counts the
    first try (botocore ``standard`` retry mode: throttling and transient errors, with backoff).
    Worst case for one call: about ``max_attempts * (connect_timeout + read_timeout)`` plus the
    backoff between attempts. Environment: ``S2S_AWS_CONNECT_TIMEOUT``, ``S2S_AWS_READ_TIMEOUT``,
    ``S2S_AWS_MAX_ATTEMPTS``.
    """

    connect_timeout: float = 1.0
    read_timeout: float = 2.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.connect_timeout <= 60 or not 0 < self.read_timeout <= 300:
            raise ConfigError("AWS timeouts must be > 0 (connect <= 60 s, read <= 300 s)")
        if not 1 <= self.max_attempts <= 10:
            raise ConfigError("AWS max_attempts must be between 1 and 10")

    @classmethod
    def from_env(cls, prefix: str = "S2S_AWS_", environ: Mapping[str, str] | None = None) -> AwsSettings:
        from s2s._env import EnvReader  # noqa: PLC0415 - keeps this module free of import cycles

        env = EnvReader(prefix, environ)
        d = cls()
        settings = {
            "connect_timeout": env.duration("CONNECT_TIMEOUT", d.connect_timeout, minimum=0.001, maximum=60),
            "read_timeout": env.duration("READ_TIMEOUT", d.read_timeout, minimum=0.001, maximum=300),
            "max_attempts": env.integer("MAX_ATTEMPTS", d.max_attempts, minimum=1, maximum=10),
        }
        env.finish()
        return cls(**settings)  # type: ignore[arg-type]


def aws_client(
    service: str,
    *,
    region: str | None = None,
    session: Any | None = None,
    settings: AwsSettings | None = None,
) -> Any:
    """A boto3 client for ``service`` with s2s's timeouts and retries (:class:`AwsSettings`,
    default: from the environment).

    ``session`` (a ``boto3.session.Session``) is the injection point, as a transport is for httpx:
    it picks credentials, profile and region; tests may also inject a ready client into an adapter.
    """
    # boto3 is an optional extra, so it is imported only here.
    try:
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415
    except ImportError:
        raise MissingExtra("aws", "boto3") from None
    install_botocore_redaction()
    settings = settings or AwsSettings.from_env()
    config = Config(
        # total_max_attempts counts the first try; botocore's max_attempts would count retries only.
        retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    # The service name is a runtime string; boto3-stubs only type literal names.
    factory = cast(Any, session if session is not None else boto3.session.Session())
    # A session built with its own region keeps it unless the caller names one.
    region_name = region or (session.region_name if session is not None else None) or aws_region()
    return factory.client(service, region_name=region_name, config=config)


class AwsService:
    """One AWS service as an adapter uses it: a client made on first use, and :meth:`call`.

    ``client`` may be injected (tests, custom configuration); otherwise :func:`aws_client` makes one
    from ``region``, ``session`` and ``settings``.
    """

    service = ""

    def __init__(
        self,
        client: Any | None = None,
        *,
        region: str | None = None,
        session: Any | None = None,
        settings: AwsSettings | None = None,
    ) -> None:
        self._client = client
        self._region = region
        self._session = session
        self._settings = settings
        install_botocore_redaction()  # an injected client logs through the same botocore loggers

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client(
                self.service, region=self._region, session=self._session, settings=self._settings
            )
        return self._client

    def call(self, operation: str, **params: Any) -> Any:
        """``client.<operation>(**params)``, with failures as :class:`~s2s.aws.errors.AwsError`.

        The one seam for every AWS call of an adapter: a circuit breaker or a worker pool wraps
        this method, nothing else.
        """
        client = self.client  # outside the try: a missing boto3 must surface as MissingExtra
        try:
            return getattr(client, operation)(**params)
        except Exception as exc:
            raise _aws_error(self.service, operation, exc) from None


def _aws_error(service: str, operation: str, exc: Exception) -> AwsError:
    code = error_code(exc)
    if code:
        return AwsError(service, operation, code)
    try:
        from botocore.exceptions import BotoCoreError, NoCredentialsError  # noqa: PLC0415
    except ImportError:  # a stand-in client without botocore installed
        return AwsError(service, operation, type(exc).__name__)
    if isinstance(exc, NoCredentialsError):
        return AwsNoCredentials(service, operation)
    if isinstance(exc, BotoCoreError):
        # botocore messages name endpoints and files, never a request parameter; still, the type
        # is enough to act on.
        return AwsUnreachable(service, operation, type(exc).__name__)
    return AwsError(service, operation, type(exc).__name__)
