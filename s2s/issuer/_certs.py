"""Client certificates: a ``private_key_jwt`` client registered by its X.509 certificate.

MSAL (Python and Node) authenticates with a certificate: its assertions name the key by the
certificate's thumbprint (``x5t#S256``, older versions SHA-1 ``x5t``) and may carry the chain in
``x5c``. We keep the certificate beside the public key it holds (a JWK with ``x5c``, RFC 7517 §4.7)
and compute the thumbprints and the validity period from it ourselves. A certificate in an
assertion header is never a key source: it is only compared with the registered key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from s2s.errors import ConfigError
from s2s.jose import KeyRejected, b64url_encode, public_key_from_jwk, public_key_to_jwk

__all__ = [
    "ClientCertificate",
    "certificates_from_pem",
    "jwk_for_certificate",
    "leaf_certificate",
    "spki_of_jwk",
]

MAX_CERT_BYTES = 8192
MAX_CHAIN = 10
_WHITESPACE = re.compile(r"\s+")
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """One certificate: its thumbprints (base64url, no padding), validity and public key."""

    der: bytes
    x5t_s256: str
    x5t: str
    not_before: float
    not_after: float
    public_jwk: Mapping[str, Any]
    spki: bytes  # DER SubjectPublicKeyInfo of the key it holds: compared, never trusted

    def holds(self, jwk: Mapping[str, Any]) -> bool:
        """Whether this certificate holds the key of ``jwk`` (compared as keys, not as text)."""
        try:
            return spki_of_jwk(jwk) == self.spki
        except KeyRejected:
            return False

    @classmethod
    def from_der(cls, der: bytes) -> ClientCertificate:
        """Raises ValueError for anything that is not a certificate with a supported public key."""
        if len(der) > MAX_CERT_BYTES:
            raise ValueError("certificate too large")
        cert = x509.load_der_x509_certificate(der)
        key = cert.public_key()
        try:
            jwk = public_key_to_jwk(key)  # type: ignore[arg-type]
        except (KeyRejected, TypeError):
            raise ValueError("certificate key type not supported") from None
        return cls(
            der=der,
            x5t_s256=b64url_encode(hashlib.sha256(der).digest()),
            # SHA-1 only as the name older MSAL versions send (x5t), never to decide trust alone.
            x5t=b64url_encode(hashlib.sha1(der, usedforsecurity=False).digest()),
            not_before=cert.not_valid_before_utc.timestamp(),
            not_after=cert.not_valid_after_utc.timestamp(),
            public_jwk=jwk,
            spki=key.public_bytes(*_SPKI),
        )

    def names(self, x5t_s256: str | None, x5t: str | None) -> bool:
        """Whether the thumbprints an assertion sent (each optional, at least one) name this one."""
        if x5t_s256 is None and x5t is None:
            return False
        return (x5t_s256 is None or x5t_s256.rstrip("=") == self.x5t_s256) and (
            x5t is None or x5t.rstrip("=") == self.x5t
        )


def spki_of_jwk(jwk: Mapping[str, Any]) -> bytes:
    """DER SubjectPublicKeyInfo of a public JWK (raises KeyRejected)."""
    key = public_key_from_jwk(jwk)
    return key.public_bytes(*_SPKI)


def _der_of(entry: Any) -> bytes:
    """An ``x5c`` entry: standard base64 of DER. MSAL writes the PEM body, newlines included."""
    if not isinstance(entry, str) or not entry or len(entry) > 2 * MAX_CERT_BYTES:
        raise ValueError("x5c entry is not a base64 string")
    try:
        return base64.b64decode(_WHITESPACE.sub("", entry), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("x5c entry is not base64") from None


def leaf_certificate(x5c: Any) -> ClientCertificate:
    """The first certificate of an ``x5c`` member. Raises ValueError when malformed."""
    if not isinstance(x5c, list) or not 0 < len(x5c) <= MAX_CHAIN:
        raise ValueError("x5c must be a non-empty list")
    return ClientCertificate.from_der(_der_of(x5c[0]))


def certificates_from_pem(pem: bytes) -> list[ClientCertificate]:
    """Every certificate of a PEM file (the first is the client's own). Errors name no content."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError("not a PEM certificate file") from None
    try:
        return [ClientCertificate.from_der(c.public_bytes(serialization.Encoding.DER)) for c in certs]
    except ValueError as exc:
        raise ConfigError(f"certificate not usable ({exc})") from None


def jwk_for_certificate(cert: ClientCertificate) -> dict[str, Any]:
    """The public JWK of the certificate's key, with the certificate itself in ``x5c``."""
    return {**cert.public_jwk, "x5c": [base64.b64encode(cert.der).decode("ascii")]}
