"""How an Entra ID application proves who it is: a client secret, a certificate, or (no secret at
all) a federated token: workload identity federation, where the application sends a token its
platform gives it (a Kubernetes projected service-account token, as the Azure workload-identity
webhook mounts at ``AZURE_FEDERATED_TOKEN_FILE``) as its client assertion.

Each credential may hold its material directly or as an ``aws-sm://`` reference, resolved once
through a :class:`~s2s.secrets.SecretSource` when the :class:`~s2s.entra.EntraApp` is built. A
client secret is the same :class:`s2s.client.ClientSecret` the s2s token client uses, and a
federated token the same :class:`s2s.client.ClientAssertion` (MSAL calls its source at every
token request: a rotated file is used from the next request on).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from s2s.client._credentials import ClientAssertion, ClientSecret
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.secrets import SecretsManagerSource, SecretSource, is_reference, resolve

__all__ = ["CertificateCredential", "Credential", "PfxCredential", "federated_token_file", "msal_credential"]


@dataclass(frozen=True, slots=True)
class CertificateCredential:
    """A PEM private key and the SHA-1 thumbprint (hex) of its certificate as registered in Entra ID.

    ``public_certificate`` (PEM) is optional: when given, MSAL sends it as ``x5c`` (subject name /
    issuer authentication). ``private_key`` may be an ``aws-sm://`` reference.
    """

    private_key: str = field(repr=False)
    thumbprint: str
    public_certificate: str | None = None
    passphrase: str | None = field(default=None, repr=False)

    def resolved(self, source: SecretSource | None) -> CertificateCredential:
        key, passphrase = self.private_key, self.passphrase
        if is_reference(key):
            key = resolve(key, source=source)
        if passphrase is not None and is_reference(passphrase):
            passphrase = resolve(passphrase, source=source)
        thumbprint = self.thumbprint.replace(":", "").strip().upper()
        if len(thumbprint) != 40 or any(c not in "0123456789ABCDEF" for c in thumbprint):
            raise ConfigError("the certificate thumbprint must be a SHA-1 hex digest (40 hex digits)")
        try:
            serialization.load_pem_private_key(key.encode(), passphrase.encode() if passphrase else None)
        except (ValueError, TypeError):
            raise ConfigError("the certificate private key is not a readable PEM key") from None
        return CertificateCredential(key, thumbprint, self.public_certificate, passphrase)


@dataclass(frozen=True, slots=True)
class PfxCredential:
    """A PKCS#12 (.pfx) bundle holding the private key and its certificate.

    ``data`` is the raw bytes, base64 text, or an ``aws-sm://`` reference (a binary secret, or a
    string secret holding base64).
    """

    data: bytes | str = field(repr=False)
    password: str | None = field(default=None, repr=False)

    def resolved(self, source: SecretSource | None) -> CertificateCredential:
        raw = self.data
        if isinstance(raw, str) and is_reference(raw):
            raw = (source or SecretsManagerSource()).get(raw)
        if isinstance(raw, str):
            try:
                raw = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError("the PFX data is neither bytes nor base64") from None
        password = self.password
        if password is not None and is_reference(password):
            password = resolve(password, source=source)
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(raw, password.encode() if password else None)
        except (ValueError, TypeError):
            # The cryptography message says only "invalid password or PKCS12 data"; keep it generic.
            raise ConfigError("the PFX could not be opened (wrong password or not PKCS#12)") from None
        if key is None or cert is None:
            raise ConfigError("the PFX must hold both the private key and its certificate")
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        return CertificateCredential(
            private_key=pem,
            thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's x5t is SHA-1
            public_certificate=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        )


Credential = ClientSecret | CertificateCredential | PfxCredential | ClientAssertion


def federated_token_file(path: str | os.PathLike[str], *, clock: Clock = system_clock) -> ClientAssertion:
    """Workload identity federation: the token in ``path`` (re-read when the kubelet rotates it)."""
    return ClientAssertion.from_file(path, clock=clock)


def msal_credential(
    credential: ClientSecret | CertificateCredential | ClientAssertion,
) -> str | dict[str, Any]:
    """The ``client_credential`` value MSAL expects."""
    if isinstance(credential, ClientSecret):
        return credential.value
    if isinstance(credential, ClientAssertion):
        # A callable, not a string: MSAL calls it for every token request it sends (MSAL >= 1.13),
        # so the assertion is the source's current one, never one read at start-up.
        return {"client_assertion": credential.source.get}
    out: dict[str, Any] = {"private_key": credential.private_key, "thumbprint": credential.thumbprint}
    if credential.public_certificate:
        x509.load_pem_x509_certificate(credential.public_certificate.encode())  # fail early if malformed
        out["public_certificate"] = credential.public_certificate
    if credential.passphrase:
        out["passphrase"] = credential.passphrase
    return out
