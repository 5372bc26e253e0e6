"""Signers turn (key record, header, claims) into a compact JWS.

:class:`LocalSigner` signs with a private JWK held in the keyset; the KMS signer (an adapter) keeps
the private key in AWS KMS. Both produce the same tokens for verifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from s2s.errors import ConfigError
from s2s.jose import (
    JoseError,
    SignFunction,
    b64url_encode,
    encode_claims,
    encode_header,
    private_key_from_jwk,
    sign_function,
)
from s2s.keys._model import SigningKey

__all__ = ["LocalSigner", "Signer", "b64url"]

# The one encoder lives in s2s.jose; the name stays here for the minter (s2s.issuer._minter).
b64url = b64url_encode


class Signer(Protocol):
    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        """A compact JWS of ``claims``; ``header`` gets ``alg`` and ``kid`` from ``key``."""
        ...


_MAX_KEYS = 64
_MAX_HEADERS = 16


def _signature_function(key: SigningKey) -> SignFunction:
    """``signing input -> JWS signature`` for ``key``, its private key parsed (and checked) once."""
    if key.private_jwk is None:
        raise ConfigError(f"key {key.kid} has no local private key")
    try:
        return sign_function(private_key_from_jwk(dict(key.private_jwk)), key.alg)
    except JoseError as exc:
        # The reason is short and never quotes key material.
        raise ConfigError(f"key {key.kid} cannot sign {key.alg}: {exc.description}") from None


class _PreparedKey:
    __slots__ = ("headers", "sign")

    def __init__(self, sign: SignFunction) -> None:
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
            head = encode_header(protected) + "."
            if cache_key is not None:
                if len(prepared.headers) >= _MAX_HEADERS:
                    prepared.headers.clear()
                prepared.headers[cache_key] = head
        signing_input = head + encode_claims(claims)
        signature = prepared.sign(signing_input.encode("ascii"))
        return signing_input + "." + b64url_encode(signature)
