"""The one Secrets Manager access layer: every read and write of a secret by s2s goes through here.

* :class:`SecretsManager` — the service (:class:`~s2s.aws.AwsService`): reads always name a stage
  (``AWSCURRENT`` unless told otherwise), because moto answers an unqualified read with the version
  the secret was created with, even after ``AWSCURRENT`` moved (real AWS defaults to it).
* :class:`SecretsManagerDocument` — a text document in one secret, read at ``AWSCURRENT`` and written
  with a compare-and-swap, for the adapters that keep mutable state there (the key store, the
  issuer's client registry). Without a lock service: the new content is written as a new version
  carrying only a private staging label, then ``AWSCURRENT`` moves to it with ``RemoveFromVersionId``
  set to the version that was read. Secrets Manager refuses that move when ``AWSCURRENT`` is no
  longer on that version, i.e. when another writer won the race; the loser's version is left without
  ``AWSCURRENT`` and is never read.

The cached read-only source for ``aws-sm://`` references is :class:`s2s.secrets.SecretsManagerSource`;
it reads through a :class:`SecretsManager` too.
"""

from __future__ import annotations

import contextlib
from typing import Any

from s2s.aws._client import AwsService
from s2s.aws.errors import AwsError
from s2s.errors import S2SError, VersionConflict

__all__ = ["CURRENT_STAGE", "PENDING_STAGE", "SecretsManager", "SecretsManagerDocument"]

CURRENT_STAGE = "AWSCURRENT"
PENDING_STAGE = "S2S-PENDING"


class SecretsManager(AwsService):
    """AWS Secrets Manager, through the one seam of :class:`~s2s.aws.AwsService`."""

    service = "secretsmanager"

    def get_value(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Any:
        """``GetSecretValue`` of one version: ``version_id``, else ``stage`` (default ``AWSCURRENT``)."""
        if version_id:
            return self.call("get_secret_value", SecretId=name, VersionId=version_id)
        return self.call("get_secret_value", SecretId=name, VersionStage=stage or CURRENT_STAGE)


class SecretsManagerDocument:
    """A text document in one secret, read at ``AWSCURRENT`` and written with a compare-and-swap.

    Shared by every adapter that keeps mutable state in Secrets Manager (the key store, the
    issuer's client registry). ``noun`` names the document in conflict messages; failures other
    than conflicts raise ``error`` (a :class:`~s2s.errors.S2SError` subclass) with the AWS error
    code only, never the value.
    """

    def __init__(
        self, secret_name: str, secrets: SecretsManager, *, noun: str, error: type[S2SError]
    ) -> None:
        self.secret_name = secret_name
        self.url = f"aws-sm://{secret_name}"
        self.secrets = secrets
        self._noun = noun
        self._error_type = error

    def read(self) -> tuple[Any, str | None]:
        """``(SecretString, VersionId)`` of ``AWSCURRENT``; ``(None, None)`` when there is none."""
        try:
            response = self.secrets.get_value(self.secret_name)
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
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
            created: str = self.secrets.call("create_secret", Name=self.secret_name, SecretString=body)[
                "VersionId"
            ]
            return created
        except AwsError as exc:
            if exc.code != "ResourceExistsException":
                raise self.error("create", exc) from None
        if self._awscurrent_holder() is not None:
            raise VersionConflict(f"{self.url}: the secret was created concurrently; reload and retry")
        return None

    def _switch(self, body: str, expected_version: str | None) -> str:
        try:
            new_version: str = self.secrets.call(
                "put_secret_value",
                SecretId=self.secret_name,
                SecretString=body,
                VersionStages=[PENDING_STAGE],
            )["VersionId"]
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                raise VersionConflict(f"{self.url}: the secret was deleted since it was read") from None
            raise self.error("write", exc) from None
        move: dict[str, str] = {"MoveToVersionId": new_version}
        if expected_version is not None:
            move["RemoveFromVersionId"] = expected_version
        try:
            self.secrets.call(
                "update_secret_version_stage", SecretId=self.secret_name, VersionStage=CURRENT_STAGE, **move
            )
        except AwsError as exc:
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
            answer = self.secrets.call("describe_secret", SecretId=self.secret_name)
        except AwsError:
            return None
        stages: dict[str, list[str]] = answer.get("VersionIdsToStages", {})
        return next((version for version, labels in stages.items() if CURRENT_STAGE in labels), None)

    def _drop_pending(self, version: str) -> None:
        # Best effort: a concurrent writer may already have taken the label for its own version,
        # and a left-over label is harmless (it marks a version nobody reads).
        with contextlib.suppress(AwsError):
            self.secrets.call(
                "update_secret_version_stage",
                SecretId=self.secret_name,
                VersionStage=PENDING_STAGE,
                RemoveFromVersionId=version,
            )

    def error(self, action: str, exc: AwsError) -> S2SError:
        # The AWS error code is enough to act on (AwsError carries no message text).
        return self._error_type(f"cannot {action} the secret {self.secret_name!r}: {exc.reason}")
