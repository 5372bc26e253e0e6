"""Registered client public keys (``private_key_jwt``): which are accepted, for which algorithms.

Moved unchanged out of :mod:`s2s.issuer.clients` when it was split; the JOSE core takes these over
(one algorithm table, one private-member set), so keep them as they are until then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from joserfc.jwk import RSAKey

from s2s.errors import ConfigError
from s2s.keys.model import public_jwk_of, thumbprint

__all__ = ["CLIENT_ASSERTION_ALGS", "algs_for_jwk"]

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# Asymmetric algorithms a client may sign its assertion with, by key type.
CLIENT_ASSERTION_ALGS: Mapping[str, tuple[str, ...]] = {
    "EC:P-256": ("ES256",),
    "EC:P-384": ("ES384",),
    "RSA": ("RS256", "PS256"),
    "OKP:Ed25519": ("Ed25519", "EdDSA"),
}


def algs_for_jwk(jwk: Mapping[str, Any]) -> tuple[str, ...]:
    """The assertion algorithms a client key may be used with."""
    kty = jwk.get("kty")
    kind = "RSA" if kty == "RSA" else f"{kty}:{jwk.get('crv')}"
    algs = CLIENT_ASSERTION_ALGS.get(kind, ())
    alg = jwk.get("alg")
    if alg is not None:
        return (alg,) if alg in algs else ()
    return algs


def _client_public_key(jwk: Any) -> dict[str, Any]:
    if not isinstance(jwk, Mapping):
        raise ConfigError("each client key must be a JSON object")
    if _PRIVATE_MEMBERS & set(jwk):
        # Never echo the key: it holds private material.
        raise ConfigError("a client JWKS must hold public keys only (found private key members)")
    kty = jwk.get("kty")
    if kty not in ("EC", "RSA", "OKP"):
        raise ConfigError(f"client key type {kty!r} is not supported (use EC, RSA or OKP)")
    if jwk.get("use", "sig") != "sig":
        raise ConfigError("client keys must be signing keys (use=sig)")
    if not algs_for_jwk(jwk):
        raise ConfigError(
            f"client key ({kty}, {jwk.get('crv')}, alg {jwk.get('alg')!r}) has no allowed algorithm"
        )
    try:
        public = public_jwk_of(jwk)
        kid = str(jwk.get("kid") or thumbprint(public))
        if kty == "RSA":
            if RSAKey.import_key(public).raw_value.key_size < 2048:
                raise ConfigError("client RSA keys must be at least 2048 bits")
        else:
            thumbprint(public)  # parses the key: a bad point or encoding fails here
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"client key is not a valid public key ({type(exc).__name__})") from None
    entry: dict[str, Any] = {**public, "kid": kid}
    if "alg" in jwk:
        entry["alg"] = jwk["alg"]
    return entry
