"""A cached AWS Secrets Manager source.

Values are cached per (name, stage or version id) for ``ttl`` seconds minus a random jitter, so a
fleet of replicas started together does not refresh in lockstep. Time comes from the injectable
clock. Retries are botocore's ``standard`` mode (see :func:`s2s.aws.aws_client`), which honours the
standard AWS environment including ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from s2s.aws import aws_client, install_botocore_redaction
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError, MissingExtra
from s2s.secrets.errors import (
    SecretAccessDenied,
    SecretError,
    SecretFieldMissing,
    SecretNotFound,
    SecretUnavailable,
)
from s2s.secrets.references import SecretReference, parse_reference

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["SecretSource", "SecretValue", "SecretsManagerSource"]

log = logging.getLogger(__name__)

_DENIED = {
    "AccessDeniedException": "not allowed to read it",
    "AccessDenied": "not allowed to read it",
    "UnrecognizedClientException": "the AWS credentials are not valid",
    "InvalidClientTokenId": "the AWS credentials are not valid",
    "InvalidSignatureException": "the AWS credentials are not valid",
    "ExpiredTokenException": "the AWS credentials have expired",
    "DecryptionFailure": "not allowed to decrypt it (KMS)",
}


class SecretSource(Protocol):
    def get(self, ref: str | SecretReference) -> str | bytes:
        """The value a reference points at (a JSON field if it names one)."""
        ...


@dataclass(frozen=True, slots=True)
class SecretValue:
    """One version of a secret. The value is left out of ``repr``."""

    name: str
    version_id: str
    stages: tuple[str, ...]
    text: str | None = field(default=None, repr=False)
    binary: bytes | None = field(default=None, repr=False)

    @property
    def value(self) -> str | bytes:
        if self.text is not None:
            return self.text
        return self.binary if self.binary is not None else b""


@dataclass(slots=True)
class _Entry:
    value: SecretValue
    expires: float


class SecretsManagerSource:
    """Reads secrets from AWS Secrets Manager with a TTL cache.

    ``client`` may be given (tests, custom config); otherwise one is made on first use by
    :func:`s2s.aws.aws_client` from ``region`` / ``session`` and the AWS environment.
    """

    def __init__(
        self,
        client: SecretsManagerClient | None = None,
        *,
        region: str | None = None,
        session: boto3.Session | None = None,
        ttl: float = 300.0,
        jitter: float = 0.1,
        clock: Clock = system_clock,
        rng: Callable[[], float] = random.random,
        max_entries: int = 1024,
    ) -> None:
        if ttl < 0 or not 0 <= jitter < 1:
            raise ConfigError("ttl must be >= 0 and jitter in [0, 1)")
        self._client = client
        self._region = region
        self._session = session
        self._ttl = ttl
        self._jitter = jitter
        self._clock = clock
        self._rng = rng
        self._max_entries = max_entries
        self._cache: dict[tuple[str, str, str], _Entry] = {}
        self._lock = threading.Lock()
        install_botocore_redaction()

    def __repr__(self) -> str:
        return f"SecretsManagerSource(ttl={self._ttl}, cached={len(self._cache)})"

    @property
    def client(self) -> SecretsManagerClient:
        if self._client is None:
            self._client = aws_client("secretsmanager", region=self._region, session=self._session)
        return self._client

    # -- reading ---------------------------------------------------------------------------
    def get(self, ref: str | SecretReference) -> str | bytes:
        """The secret (or its JSON field) that ``ref`` names. Binary secrets come back as bytes."""
        parsed, shown = _parse(ref)
        secret = self.fetch(parsed.name, stage=parsed.stage, version_id=parsed.version_id, reference=shown)
        if parsed.field is None:
            return secret.value
        return _field(secret.value, parsed.field, shown)

    def get_text(self, ref: str | SecretReference) -> str:
        """Like :meth:`get`, but a binary secret must be UTF-8 text."""
        value = self.get(ref)
        if isinstance(value, str):
            return value
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(_parse(ref)[1], "the secret is binary, not UTF-8 text") from None

    def get_bytes(self, ref: str | SecretReference) -> bytes:
        value = self.get(ref)
        return value.encode("utf-8") if isinstance(value, str) else value

    def get_json(self, ref: str | SecretReference) -> Any:
        """The secret (or field) parsed as JSON."""
        value = self.get(ref)
        try:
            return json.loads(value)
        except ValueError:
            # ``from None``: a JSONDecodeError keeps the whole document (the secret) in ``.doc``.
            raise SecretFieldMissing(_parse(ref)[1], "the secret is not valid JSON") from None

    def fetch(
        self,
        name: str,
        *,
        stage: str | None = None,
        version_id: str | None = None,
        force: bool = False,
        reference: str | None = None,
    ) -> SecretValue:
        """One version of ``name`` (``AWSCURRENT`` unless a stage or version id is given), cached."""
        shown = reference or str(SecretReference(name, stage=stage, version_id=version_id))
        key = (name, stage or ("" if version_id else "AWSCURRENT"), version_id or "")
        now = self._clock.monotonic()
        if not force:
            with self._lock:
                entry = self._cache.get(key)
            if entry is not None and now < entry.expires:
                return entry.value
        secret = self._call(name, stage=stage, version_id=version_id, shown=shown)
        expires = now + self._ttl * (1.0 - self._jitter * self._rng())
        with self._lock:
            if len(self._cache) >= self._max_entries and key not in self._cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = _Entry(secret, expires)
        return secret

    def refresh(self, ref: str | SecretReference | None = None) -> None:
        """Forget cached values: all of them, or every version of the secret ``ref`` names."""
        with self._lock:
            if ref is None:
                self._cache.clear()
                return
            name = _parse(ref)[0].name
            for key in [k for k in self._cache if k[0] == name]:
                del self._cache[key]

    # -- AWS -------------------------------------------------------------------------------
    def _call(self, name: str, *, stage: str | None, version_id: str | None, shown: str) -> SecretValue:
        try:
            # botocore comes with the optional boto3 extra, so it is imported only here.
            from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
        except ImportError:
            raise MissingExtra("aws", "boto3") from None
        kwargs: dict[str, str] = {"SecretId": name}
        if version_id:
            kwargs["VersionId"] = version_id
        else:
            kwargs["VersionStage"] = stage or "AWSCURRENT"
        try:
            # The stubs mark every answer field as present; moto and AWS may omit either value.
            answer: dict[str, Any] = dict(self.client.get_secret_value(**kwargs))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            raise _client_error(code, shown, stage=stage, version_id=version_id) from None
        except BotoCoreError as exc:
            # botocore messages name endpoints and files, never a secret value.
            raise SecretUnavailable(shown, f"cannot reach Secrets Manager ({type(exc).__name__})") from None
        text = answer.get("SecretString")
        binary = answer.get("SecretBinary")
        if text is None and binary is None:
            raise SecretNotFound(shown, "the secret version holds no value")
        log.debug("secret read: %s (version %s)", shown, answer.get("VersionId", "?"))
        return SecretValue(
            name=str(answer.get("Name", name)),
            version_id=str(answer.get("VersionId", "")),
            stages=tuple(answer.get("VersionStages", ())),
            text=text,
            binary=bytes(binary) if binary is not None else None,
        )


def _client_error(code: str, shown: str, *, stage: str | None, version_id: str | None) -> SecretError:
    if code == "ResourceNotFoundException":
        if version_id:
            return SecretNotFound(shown, f"no such secret or no version {version_id}")
        if stage and stage != "AWSCURRENT":
            return SecretNotFound(shown, f"no such secret or no version labelled {stage}")
        return SecretNotFound(shown, "no such secret")
    if code in _DENIED:
        return SecretAccessDenied(shown, f"{_DENIED[code]} ({code})")
    if code == "InvalidRequestException":
        return SecretNotFound(shown, "the secret cannot be read (scheduled for deletion?)")
    if code == "InvalidParameterException":
        return SecretNotFound(shown, "Secrets Manager rejected the name, stage or version id")
    return SecretUnavailable(shown, f"Secrets Manager answered {code}")


def _parse(ref: str | SecretReference) -> tuple[SecretReference, str]:
    if isinstance(ref, SecretReference):
        return ref, str(ref)
    return parse_reference(ref), ref.strip()


def _field(value: str | bytes, name: str, shown: str) -> str:
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SecretFieldMissing(shown, f"the secret is not a JSON object, so it has no field {name!r}")
    if name not in document:
        raise SecretFieldMissing(shown, f"the secret has no field {name!r}")
    selected = document[name]
    if isinstance(selected, str):
        return selected
    return json.dumps(selected, separators=(",", ":"))
