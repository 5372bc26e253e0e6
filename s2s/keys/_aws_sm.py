"""Key store in one AWS Secrets Manager secret (shared by every issuer replica).

The keyset is the JSON document of one secret; its version is the ``AWSCURRENT`` VersionId, and
:meth:`SecretsManagerKeyStore.save` is the compare-and-swap of :class:`s2s.aws.SecretsManagerDocument`
(a new version under a private stage, then ``AWSCURRENT`` moved with ``RemoveFromVersionId``).
Location: ``aws-sm://NAME[?region=R]`` (the grammar: :mod:`s2s.secrets._references`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from s2s.aws import AwsSettings, SecretsManager, SecretsManagerDocument
from s2s.errors import ConfigError
from s2s.keys._model import KeySet
from s2s.keys.errors import KeyStoreError
from s2s.secrets._references import parse_location

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["SecretsManagerKeyStore"]


class SecretsManagerKeyStore:
    """The keyset as JSON in the secret ``secret_name``; its version is the ``AWSCURRENT`` VersionId."""

    def __init__(
        self,
        secret_name: str,
        client: SecretsManagerClient | None = None,
        *,
        region: str | None = None,
        session: boto3.Session | None = None,
        aws: AwsSettings | None = None,
    ) -> None:
        if not secret_name:
            raise ConfigError("aws-sm key store needs a secret name: aws-sm://NAME")
        self.secret_name = secret_name
        self.url = f"aws-sm://{secret_name}"
        secrets = SecretsManager(client, region=region, session=session, settings=aws)
        self._document = SecretsManagerDocument(secret_name, secrets, noun="keyset", error=KeyStoreError)

    @classmethod
    def from_url(
        cls, url: str, client: SecretsManagerClient | None = None, *, session: boto3.Session | None = None
    ) -> SecretsManagerKeyStore:
        """``aws-sm://NAME`` or ``aws-sm://NAME?region=eu-west-1``."""
        location = parse_location(url, "key store")
        return cls(location.name, client, region=location.region, session=session)

    def __repr__(self) -> str:
        return f"SecretsManagerKeyStore({self.secret_name!r})"

    @property
    def client(self) -> SecretsManagerClient:
        client: SecretsManagerClient = self._document.secrets.client
        return client

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
