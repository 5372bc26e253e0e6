"""Signers turn (key record, header, claims) into a compact JWS.

:class:`LocalSigner` signs with a private JWK held in the keyset; the KMS signer (an adapter) keeps
the private key in AWS KMS. Both produce the same tokens for verifiers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from s2s.errors import ConfigError
from s2s.keys.model import SIGNING_ALGS, SigningKey

__all__ = ["LocalSigner", "Signer"]


class Signer(Protocol):
    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        """A compact JWS of ``claims``; ``header`` gets ``alg`` and ``kid`` from ``key``."""
        ...


_REGISTRY = JWSRegistry(algorithms=list(SIGNING_ALGS))


class LocalSigner:
    """Signs with the key's private JWK. Imported keys are cached by kid."""

    def __init__(self) -> None:
        self._keys: dict[str, ECKey | RSAKey | OKPKey] = {}

    def _key(self, key: SigningKey) -> ECKey | RSAKey | OKPKey:
        cached = self._keys.get(key.kid)
        if cached is not None:
            return cached
        if key.private_jwk is None:
            raise ConfigError(f"key {key.kid} has no local private key")
        kty = key.public_jwk["kty"]
        imported: ECKey | RSAKey | OKPKey
        if kty == "EC":
            imported = ECKey.import_key(dict(key.private_jwk))
        elif kty == "RSA":
            imported = RSAKey.import_key(dict(key.private_jwk))
        else:
            imported = OKPKey.import_key(dict(key.private_jwk))
        if len(self._keys) > 64:
            self._keys.clear()
        self._keys[key.kid] = imported
        return imported

    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        protected = {**header, "alg": key.alg, "kid": key.kid}
        payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
        return jws.serialize_compact(protected, payload, self._key(key), registry=_REGISTRY)
