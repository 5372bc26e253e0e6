"""Key store in one AWS Secrets Manager secret (shared by every issuer replica).

Compare-and-swap without a lock service (:class:`SecretsManagerDocument`, also used by the
issuer's client registry): :meth:`SecretsManagerKeyStore.save` writes the new keyset as a new
secret version carrying only a private staging label, then moves ``AWSCURRENT`` to it with
``RemoveFromVersionId`` set to the version that was read. Secrets Manager refuses that move when
``AWSCURRENT`` is no longer on that version, i.e. when another writer won the race; the loser's
version is left without ``AWSCURRENT`` and is never read.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from s2s.aws import aws_client, error_code, install_botocore_redaction
from s2s.errors import ConfigError, S2SError
from s2s.keys.errors import KeyStoreError, VersionConflict
from s2s.keys.model import KeySet

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["PENDING_STAGE", "SecretsManagerDocument", "SecretsManagerKeyStore", "parse_secret_url"]

PENDING_STAGE = "S2S-PENDING"
_CURRENT = "AWSCURRENT"


class SecretsManagerDocument:
    """A text document in one secret, read at ``AWSCURRENT`` and written with a compare-and-swap.

    Shared by every adapter that keeps mutable state in Secrets Manager (the key store, the
    issuer's client registry). ``noun`` names the document in conflict messages; failures other
    than conflicts raise ``error`` (a :class:`~s2s.errors.S2SError` subclass) with the AWS error
    code only, never the value.
    """

    def __init__(
        self,
        secret_name: str,
        client: SecretsManagerClient | None = None,
        *,
        region: str | None = None,
        noun: str = "document",
        error: type[S2SError] = KeyStoreError,
    ) -> None:
        self.secret_name = secret_name
        self.url = f"aws-sm://{secret_name}"
        self._client = client
        self._region = region
        self._noun = noun
        self._error_type = error
        install_botocore_redaction()

    @property
    def client(self) -> SecretsManagerClient:
        if self._client is None:
            self._client = aws_client("secretsmanager", region=self._region)
        return self._client

    def read(self) -> tuple[Any, str | None]:
        """``(SecretString, VersionId)`` of ``AWSCURRENT``; ``(None, None)`` when there is none."""
        client = self.client  # outside the try: a missing boto3 must surface as MissingExtra
        try:
            # The stage is explicit: moto 5.2 answers an unqualified read with the version the
            # secret was created with, even after AWSCURRENT moved (real AWS defaults to it).
            response = client.get_secret_value(SecretId=self.secret_name, VersionStage=_CURRENT)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None, None
            raise self.error("read", exc) from None
        return response.get("SecretString"), response["VersionId"]

    def write(self, body: str, expected_version: str | None) -> str:
        """Store ``body`` if ``AWSCURRENT`` is still ``expected_version``; the new version id.

        Raises :class:`VersionConflict` when another writer moved ``AWSCURRENT`` in between.
        """
        if expected_version is None:
            created = self._create(body)
            if created is not None:
                return created
            # The secret exists without a value (typical when infrastructure code creates it):
            # moving AWSCURRENT without RemoveFromVersionId succeeds only while no version has it.
        return self._switch(body, expected_version)

    def _create(self, body: str) -> str | None:
        """The new version, or None when the secret exists but has no AWSCURRENT value."""
        try:
            return self.client.create_secret(Name=self.secret_name, SecretString=body)["VersionId"]
        except Exception as exc:
            if error_code(exc) != "ResourceExistsException":
                raise self.error("create", exc) from None
        if self._awscurrent_holder() is not None:
            raise VersionConflict(f"{self.url}: the secret was created concurrently; reload and retry")
        return None

    def _switch(self, body: str, expected_version: str | None) -> str:
        client = self.client
        try:
            new_version = client.put_secret_value(
                SecretId=self.secret_name, SecretString=body, VersionStages=[PENDING_STAGE]
            )["VersionId"]
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise VersionConflict(f"{self.url}: the secret was deleted since it was read") from None
            raise self.error("write", exc) from None
        move: dict[str, str] = {"MoveToVersionId": new_version}
        if expected_version is not None:
            move["RemoveFromVersionId"] = expected_version
        try:
            client.update_secret_version_stage(SecretId=self.secret_name, VersionStage=_CURRENT, **move)
        except Exception as exc:
            self._drop_pending(new_version)
            holder = self._awscurrent_holder()
            if holder == new_version:
                # The move happened but its answer was lost (a retried timeout): our write won.
                return new_version
            if holder is not None and holder != expected_version:
                raise VersionConflict(
                    f"{self.url}: the {self._noun} changed since it was read; reload and retry"
                ) from None
            raise self.error("switch AWSCURRENT of", exc) from None
        self._drop_pending(new_version)
        return new_version

    def _awscurrent_holder(self) -> str | None:
        """The version AWSCURRENT is on now, or None if that cannot be told."""
        try:
            stages = self.client.describe_secret(SecretId=self.secret_name).get("VersionIdsToStages", {})
        except Exception:
            return None
        return next((version for version, labels in stages.items() if _CURRENT in labels), None)

    def _drop_pending(self, version: str) -> None:
        # Best effort: a concurrent writer may already have taken the label for its own version,
        # and a left-over label is harmless (it marks a version nobody reads).
        with contextlib.suppress(Exception):
            self.client.update_secret_version_stage(
                SecretId=self.secret_name, VersionStage=PENDING_STAGE, RemoveFromVersionId=version
            )

    def error(self, action: str, exc: BaseException) -> S2SError:
        # The AWS error code is enough to act on; the message text is not echoed in case it
        # quotes a request parameter.
        code = error_code(exc) or type(exc).__name__
        return self._error_type(f"cannot {action} the secret {self.secret_name!r}: {code}")


def parse_secret_url(url: str, what: str) -> tuple[str, dict[str, str]]:
    """``aws-sm://NAME?key=value&...`` -> ``(NAME, {key: value})`` (the last value of a key wins)."""
    if not url.startswith("aws-sm://"):
        raise ConfigError(f"a Secrets Manager {what} URL starts with aws-sm://")
    name, _, query = url.removeprefix("aws-sm://").partition("?")
    if not name:
        raise ConfigError(f"aws-sm {what} needs a secret name: aws-sm://NAME")
    return name, {key: values[-1] for key, values in parse_qs(query).items()}


class SecretsManagerKeyStore:
    """The keyset as JSON in the secret ``secret_name``; its version is the ``AWSCURRENT`` VersionId."""

    def __init__(
        self, secret_name: str, client: SecretsManagerClient | None = None, *, region: str | None = None
    ) -> None:
        if not secret_name:
            raise ConfigError("aws-sm key store needs a secret name: aws-sm://NAME")
        self.secret_name = secret_name
        self.url = f"aws-sm://{secret_name}"
        self._document = SecretsManagerDocument(secret_name, client, region=region, noun="keyset")

    @classmethod
    def from_url(cls, url: str, client: SecretsManagerClient | None = None) -> SecretsManagerKeyStore:
        """``aws-sm://NAME`` or ``aws-sm://NAME?region=eu-west-1``."""
        name, params = parse_secret_url(url, "key store")
        return cls(name, client, region=params.get("region"))

    def __repr__(self) -> str:
        return f"SecretsManagerKeyStore({self.secret_name!r})"

    @property
    def client(self) -> SecretsManagerClient:
        return self._document.client

    def load(self) -> tuple[KeySet, str | None]:
        text, version = self._document.read()
        if version is None:
            return KeySet(), None
        return self._parse(text), version

    def save(self, keyset: KeySet, expected_version: str | None) -> str:
        body = json.dumps(keyset.to_document(), separators=(",", ":"), sort_keys=True)
        return self._document.write(body, expected_version)

    def _parse(self, text: Any) -> KeySet:
        # Messages never quote the secret: it holds private keys.
        if not isinstance(text, str):
            raise KeyStoreError(f"{self.url}: the secret has no string value")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            raise KeyStoreError(f"{self.url}: the secret is not valid JSON") from None
        try:
            return KeySet.from_document(doc)
        except ConfigError as exc:
            raise KeyStoreError(f"{self.url}: not a valid keyset: {exc.description}") from None
