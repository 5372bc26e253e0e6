"""Signers turn (key record, header, claims) into a compact JWS.

:class:`LocalSigner` signs with a private JWK held in the keyset; the KMS signer (an adapter) keeps
the private key in AWS KMS. Both produce the same tokens for verifiers.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, OKPKey, RSAKey

from s2s.errors import ConfigError
from s2s.keys.model import SigningKey

__all__ = ["LocalSigner", "Signer", "b64url"]


class Signer(Protocol):
    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        """A compact JWS of ``claims``; ``header`` gets ``alg`` and ``kid`` from ``key``."""
        ...


_URLSAFE = bytes.maketrans(b"+/", b"-_")
# One encoder for every token: json.dumps with non-default options builds a new one per call.
_CLAIMS_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_HEADER_JSON = json.JSONEncoder(separators=(",", ":"))
_MAX_KEYS = 64
_MAX_HEADERS = 16


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2), without the wrappers of :mod:`base64`."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URLSAFE).decode("ascii")


def _signature_function(key: SigningKey) -> Callable[[bytes], bytes]:
    """``signing input -> JWS signature`` for ``key``, its private key parsed once.

    The private JWK is imported (and so validated) by joserfc; signing then calls ``cryptography``
    directly, which is what joserfc does underneath, minus its per-call header checks and wrappers.
    """
    if key.private_jwk is None:
        raise ConfigError(f"key {key.kid} has no local private key")
    kty = key.public_jwk.get("kty")
    jwk = dict(key.private_jwk)
    private: Any
    try:
        if kty == "EC":
            private = ECKey.import_key(jwk).private_key
        elif kty == "RSA":
            private = RSAKey.import_key(jwk).private_key
        elif kty == "OKP":
            private = OKPKey.import_key(jwk).private_key
        else:
            raise ConfigError(f"key {key.kid} has an unsupported key type")
    except (ValueError, TypeError, KeyError):
        raise ConfigError(f"key {key.kid} has an unusable private key") from None
    alg = key.alg
    if alg == "ES256" and isinstance(private, ec.EllipticCurvePrivateKey):
        if not isinstance(private.curve, ec.SECP256R1):
            raise ConfigError(f"key {key.kid}: ES256 needs a P-256 key")
        ecdsa = ec.ECDSA(hashes.SHA256())
        ec_key = private

        def sign_es256(data: bytes) -> bytes:
            # JWS wants the fixed-width r || s (RFC 7518 §3.4), not the DER the library returns.
            r, s = decode_dss_signature(ec_key.sign(data, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return sign_es256
    if alg in ("RS256", "PS256") and isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise ConfigError(f"key {key.kid}: {alg} needs an RSA key of at least 2048 bits")
        sha256 = hashes.SHA256()
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if alg == "RS256"
            # RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash output.
            else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=sha256.digest_size)
        )
        rsa_key = private

        def sign_rsa(data: bytes) -> bytes:
            return rsa_key.sign(data, pad, sha256)

        return sign_rsa
    if alg == "Ed25519" and isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign
    raise ConfigError(f"key {key.kid} cannot sign {alg}")


class _PreparedKey:
    __slots__ = ("headers", "sign")

    def __init__(self, sign: Callable[[bytes], bytes]) -> None:
        self.sign = sign
        # Encoded protected header (with the trailing ".") per header of string values.
        self.headers: dict[tuple[tuple[str, Any], ...], str] = {}


class LocalSigner:
    """Signs with the key's private JWK. Parsed keys and encoded headers are cached by kid.

    The kid is the key's RFC 7638 thumbprint, so one kid always names one key pair.
    """

    def __init__(self) -> None:
        self._keys: dict[str, _PreparedKey] = {}

    def __repr__(self) -> str:
        return "LocalSigner()"

    def _prepared(self, key: SigningKey) -> _PreparedKey:
        prepared = self._keys.get(key.kid)
        if prepared is None:
            prepared = _PreparedKey(_signature_function(key))
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            self._keys[key.kid] = prepared
        return prepared

    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        prepared = self._prepared(key)
        head: str | None = None
        # Headers of plain strings (the usual {"typ": "at+jwt"}) are encoded once per key; any
        # other value type is encoded every time rather than risk True == 1 sharing an entry.
        cache_key = tuple(header.items()) if all(type(v) is str for v in header.values()) else None
        if cache_key is not None:
            head = prepared.headers.get(cache_key)
        if head is None:
            protected = {**header, "alg": key.alg, "kid": key.kid}
            head = b64url(_HEADER_JSON.encode(protected).encode()) + "."
            if cache_key is not None:
                if len(prepared.headers) >= _MAX_HEADERS:
                    prepared.headers.clear()
                prepared.headers[cache_key] = head
        signing_input = head + b64url(_CLAIMS_JSON.encode(claims).encode())
        signature = prepared.sign(signing_input.encode("ascii"))
        return signing_input + "." + b64url(signature)
