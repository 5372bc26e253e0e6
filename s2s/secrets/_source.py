"""A cached AWS Secrets Manager source.

Values are cached per (name, stage or version id) for ``ttl`` seconds minus a random jitter, so a
fleet of replicas started together does not refresh in lockstep. Time comes from the injectable
clock. Reads go through the one Secrets Manager access layer (:class:`s2s.aws.SecretsManager`), with
its timeouts and retries (:class:`s2s.aws.AwsSettings`); the standard AWS environment applies,
including ``AWS_ENDPOINT_URL``. A reference naming a ``region=`` is read from that region.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from s2s.aws import AwsError, AwsNoCredentials, AwsSettings, AwsUnreachable, SecretsManager
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.secrets._references import SecretReference, parse_reference
from s2s.secrets.errors import (
    SecretAccessDenied,
    SecretError,
    SecretFieldMissing,
    SecretNotFound,
    SecretUnavailable,
)

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["SecretSource", "SecretValue", "SecretsManagerSource"]

log = logging.getLogger("s2s.secrets.source")

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
    :func:`s2s.aws.aws_client` from ``region`` / ``session`` / ``aws`` and the AWS environment.
    """

    def __init__(
        self,
        client: SecretsManagerClient | None = None,
        *,
        region: str | None = None,
        session: boto3.Session | None = None,
        aws: AwsSettings | None = None,
        ttl: float = 300.0,
        jitter: float = 0.1,
        clock: Clock = system_clock,
        rng: Callable[[], float] = random.random,
        max_entries: int = 1024,
    ) -> None:
        if ttl < 0 or not 0 <= jitter < 1:
            raise ConfigError("ttl must be >= 0 and jitter in [0, 1)")
        self._session = session
        self._aws = aws
        self._service = SecretsManager(client, region=region, session=session, settings=aws)
        self._regional: dict[str, SecretsManager] = {}
        self._ttl = ttl
        self._jitter = jitter
        self._clock = clock
        self._rng = rng
        self._max_entries = max_entries
        self._cache: dict[tuple[str, str, str, str], _Entry] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SecretsManagerSource(ttl={self._ttl}, cached={len(self._cache)})"

    @property
    def client(self) -> SecretsManagerClient:
        client: SecretsManagerClient = self._service.client
        return client

    def _in(self, region: str | None) -> SecretsManager:
        if region is None:
            return self._service
        with self._lock:
            service = self._regional.get(region)
            if service is None:
                service = SecretsManager(region=region, session=self._session, settings=self._aws)
                self._regional[region] = service
        return service

    # -- reading ---------------------------------------------------------------------------
    def get(self, ref: str | SecretReference) -> str | bytes:
        """The secret (or its JSON field) that ``ref`` names. Binary secrets come back as bytes."""
        parsed, shown = _parse(ref)
        secret = self.fetch(
            parsed.name,
            stage=parsed.stage,
            version_id=parsed.version_id,
            region=parsed.region,
            reference=shown,
        )
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
        region: str | None = None,
        force: bool = False,
        reference: str | None = None,
    ) -> SecretValue:
        """One version of ``name`` (``AWSCURRENT`` unless a stage or version id is given), cached."""
        shown = reference or str(SecretReference(name, stage=stage, version_id=version_id, region=region))
        key = (name, stage or ("" if version_id else "AWSCURRENT"), version_id or "", region or "")
        now = self._clock.monotonic()
        if not force:
            with self._lock:
                entry = self._cache.get(key)
            if entry is not None and now < entry.expires:
                return entry.value
        secret = self._read(self._in(region), name, stage=stage, version_id=version_id, shown=shown)
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
    def _read(
        self, service: SecretsManager, name: str, *, stage: str | None, version_id: str | None, shown: str
    ) -> SecretValue:
        try:
            # The stubs mark every answer field as present; moto and AWS may omit either value.
            answer: dict[str, Any] = dict(service.get_value(name, stage=stage, version_id=version_id))
        except AwsNoCredentials as exc:
            raise SecretAccessDenied(shown, exc.description) from None
        except AwsUnreachable as exc:
            raise SecretUnavailable(shown, f"cannot reach Secrets Manager ({exc.code})") from None
        except AwsError as exc:
            raise _client_error(exc.code, shown, stage=stage, version_id=version_id) from None
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
