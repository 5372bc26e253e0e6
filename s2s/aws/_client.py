"""The boto3 client factory, its settings, and the one seam every AWS call goes through.

boto3 is an optional extra: it is imported only when a client is built. The standard AWS
environment applies unchanged (credentials chain, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>``, which boto3 >= 1.28 reads itself), so pointing s2s at moto or
LocalStack needs no s2s-specific setting.

Timeouts and retries are tight by default (:class:`AwsSettings`: 1 s to connect, 2 s to read, 3
attempts): a token service must answer "try again" quickly rather than hang on a slow dependency.

Every call an adapter makes goes through :meth:`AwsService.call`: it turns botocore's exceptions
into :mod:`s2s.aws.errors` (codes only, never message texts) and applies the service's
:class:`CircuitBreaker`: after ``breaker_threshold`` calls in a row that found AWS unreachable
(timeouts, refused connections, 5xx codes), calls fail at once with :class:`AwsUnreachable`
(code ``CircuitOpen``) for ``breaker_cooldown`` seconds; then one trial call goes through, and its
success closes the breaker. A hung endpoint costs a replica one read timeout per few seconds, not
one per request. The calls are blocking: callers on an event loop run them in a worker thread
(the issuer's token endpoint, key manager and readiness probes all do).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from s2s.aws.errors import AwsError, AwsNoCredentials, AwsUnreachable
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError, MissingExtra

__all__ = [
    "DEFAULT_REGION",
    "AwsService",
    "AwsSettings",
    "CircuitBreaker",
    "SecretRecordFilter",
    "aws_client",
    "aws_region",
    "error_code",
    "install_botocore_redaction",
]

DEFAULT_REGION = "us-east-1"

log = logging.getLogger("s2s.aws")

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
    backoff between attempts. ``breaker_threshold`` unreachable calls in a row open the circuit
    breaker for ``breaker_cooldown`` seconds (:class:`CircuitBreaker`). Environment:
    ``S2S_AWS_CONNECT_TIMEOUT``, ``S2S_AWS_READ_TIMEOUT``, ``S2S_AWS_MAX_ATTEMPTS``,
    ``S2S_AWS_BREAKER_THRESHOLD``, ``S2S_AWS_BREAKER_COOLDOWN``.
    """

    connect_timeout: float = 1.0
    read_timeout: float = 2.0
    max_attempts: int = 3
    breaker_threshold: int = 3
    breaker_cooldown: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.connect_timeout <= 60 or not 0 < self.read_timeout <= 300:
            raise ConfigError("AWS timeouts must be > 0 (connect <= 60 s, read <= 300 s)")
        if not 1 <= self.max_attempts <= 10:
            raise ConfigError("AWS max_attempts must be between 1 and 10")
        if not 1 <= self.breaker_threshold <= 100 or not 0 < self.breaker_cooldown <= 300:
            raise ConfigError("AWS breaker threshold must be 1..100 and its cooldown 0..300 s")

    @classmethod
    def from_env(cls, prefix: str = "S2S_AWS_", environ: Mapping[str, str] | None = None) -> AwsSettings:
        from s2s._env import EnvReader  # noqa: PLC0415 - keeps this module free of import cycles

        env = EnvReader(prefix, environ)
        d = cls()
        settings = {
            "connect_timeout": env.duration("CONNECT_TIMEOUT", d.connect_timeout, minimum=0.001, maximum=60),
            "read_timeout": env.duration("READ_TIMEOUT", d.read_timeout, minimum=0.001, maximum=300),
            "max_attempts": env.integer("MAX_ATTEMPTS", d.max_attempts, minimum=1, maximum=10),
            "breaker_threshold": env.integer(
                "BREAKER_THRESHOLD", d.breaker_threshold, minimum=1, maximum=100
            ),
            "breaker_cooldown": env.duration(
                "BREAKER_COOLDOWN", d.breaker_cooldown, minimum=0.001, maximum=300
            ),
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


# Codes that mean "AWS did not serve this call" (as opposed to an answer we do not like).
_UNAVAILABLE_CODES = frozenset(
    {"InternalFailure", "InternalServerError", "ServiceUnavailable", "KMSInternalException", "CircuitOpen"}
)


class CircuitBreaker:
    """Fail fast after ``threshold`` unreachable calls in a row, for ``cooldown`` seconds.

    Closed: every call goes through. Open (after ``threshold`` failures): :meth:`allow` says no
    until ``cooldown`` has passed; then it lets one trial call through (half open) and says no to
    the others while that trial runs (a trial that hangs is replaced after another ``cooldown``).
    A success closes the breaker, a failure opens it again. Thread-safe.
    """

    def __init__(self, threshold: int = 3, cooldown: float = 3.0, *, clock: Clock = system_clock) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            now = self._clock.monotonic()
            since = self._trial_at if self._trial_at is not None else self._opened_at
            if now - since < self.cooldown:
                return False
            self._trial_at = now
            return True

    def success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.warning("AWS answers again: circuit breaker closed")
            self._failures, self._opened_at, self._trial_at = 0, None, None

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                if self._opened_at is None:
                    log.error(
                        "AWS unreachable %d times in a row: failing fast for %gs",
                        self._failures,
                        self.cooldown,
                    )
                self._opened_at, self._trial_at = self._clock.monotonic(), None


class AwsService:
    """One AWS service as an adapter uses it: a client made on first use, and :meth:`call`.

    ``client`` may be injected (tests, custom configuration); otherwise :func:`aws_client` makes one
    from ``region``, ``session`` and ``settings``. ``breaker`` defaults to one per service object,
    from ``settings`` (default: the environment).
    """

    service = ""

    def __init__(
        self,
        client: Any | None = None,
        *,
        region: str | None = None,
        session: Any | None = None,
        settings: AwsSettings | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._client = client
        self._region = region
        self._session = session
        self._settings = settings
        if breaker is None:
            configured = settings or AwsSettings.from_env()
            breaker = CircuitBreaker(configured.breaker_threshold, configured.breaker_cooldown)
        self.breaker = breaker
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

        The one seam for every AWS call of an adapter, and the place of the circuit breaker: while
        it is open, the call fails at once with :class:`AwsUnreachable` (code ``CircuitOpen``).
        """
        client = self.client  # outside the try: a missing boto3 must surface as MissingExtra
        if not self.breaker.allow():
            raise AwsUnreachable(self.service, operation, "CircuitOpen")
        try:
            result = getattr(client, operation)(**params)
        except Exception as exc:
            error = _aws_error(self.service, operation, exc)
            if isinstance(error, AwsUnreachable) or error.code in _UNAVAILABLE_CODES:
                self.breaker.failure()
            else:
                self.breaker.success()  # AWS answered, even if with a refusal
            raise error from None
        self.breaker.success()
        return result


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
