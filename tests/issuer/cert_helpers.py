"""Client certificates and assertions as MSAL and Authlib make them, and `s2s clients add` run
in-process, for the issuer tests."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from s2s.cli import main

__all__ = ["ClientCert", "assertion", "clients_add", "make_client_cert"]


def clients_add(registry: Path, client_id: str, *args: str) -> Result:
    """``s2s clients add CLIENT_ID ARGS --registry file://REGISTRY`` (in-process)."""
    return CliRunner().invoke(main, ["clients", "add", client_id, *args, "--registry", f"file://{registry}"])


@dataclass(frozen=True)
class ClientCert:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def x5t_s256(self, *, padded: bool = True) -> str:
        # MSAL keeps the base64 padding; the comparison ignores it.
        value = base64.urlsafe_b64encode(hashlib.sha256(self.der).digest()).decode()
        return value if padded else value.rstrip("=")

    def x5t(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha1(self.der, usedforsecurity=False).digest()).decode()

    def x5c(self) -> list[str]:
        # As MSAL writes it: the PEM body, line breaks included.
        return ["\n".join(self.pem.decode().strip().splitlines()[1:-1])]

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(self.pem)
        key_path.write_bytes(self.key_pem)
        return cert_path, key_path


def make_client_cert(
    cn: str = "client", *, not_before: float | None = None, not_after: float | None = None
) -> ClientCert:
    now = time.time()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.fromtimestamp(now - 300 if not_before is None else not_before, dt.UTC))
        .not_valid_after(dt.datetime.fromtimestamp(now + 86400 if not_after is None else not_after, dt.UTC))
        .sign(key, hashes.SHA256())
    )
    return ClientCert(key, cert)


def assertion(
    client_id: str,
    audience: str,
    key: Any,
    *,
    alg: str,
    header: dict[str, Any],
    now: float,
    lifetime: int = 600,
) -> str:
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=alg, headers=header)
