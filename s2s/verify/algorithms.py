"""The asymmetric algorithm allowlist and the verification keys it admits.

Every key is pinned to exactly one algorithm when it is loaded from a JWKS: its JWK ``alg`` if it
has one, else the algorithm its ``kty``/``crv`` implies. A token is checked only with a key whose
pinned algorithm equals the token's ``alg``, so key-confusion attacks (HS256 keyed with an RSA
public key, an ES256 header against an RSA key, ...) have nothing to work with.

RSA keys without ``alg`` (Entra ID publishes them that way) are pinned to RS256 when RS256 is
allowed, else to PS256 when that is the only RSA algorithm allowed: one key never verifies both
paddings. An issuer that signs PS256 with alg-less keys next to RS256 must publish ``alg``.

Signatures are checked by calling ``cryptography`` directly with the preloaded public key: the
encodings are checked exactly (ES256 is 64 bytes r||s, RSA signatures are exactly the modulus
length, Ed25519 is 64 bytes). High-s ECDSA signatures are accepted: RFC 7518 does not require
low-s, common signers (OpenSSL, KMS) emit both, and a malleated signature does not change what was
signed (the claims, including ``jti``, are the same bytes).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from s2s.errors import ConfigError

__all__ = [
    "DEFAULT_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "AlgorithmPolicy",
    "KeyRejected",
    "VerifyKey",
    "b64url_decode",
    "load_jwk",
    "normalize_header_alg",
]

# The algorithms this verifier implements; anything else is refused when a config is built.
SUPPORTED_ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "PS256", "Ed25519")
DEFAULT_ALGORITHMS: tuple[str, ...] = SUPPORTED_ALGORITHMS
# alg -> the kty it needs (and the curve for EC/OKP).
_ALG_KEY_TYPE: Mapping[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "Ed25519": ("OKP", "Ed25519"),
}
# RFC 9864 deprecates the polymorphic "EdDSA" for "Ed25519"; tokens and JWKS still use it. It is
# read as Ed25519 and nothing else: an Ed448 key is never loaded, so "EdDSA" cannot reach Ed448.
_ALG_ALIASES: Mapping[str, str] = {"EdDSA": "Ed25519"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192


class KeyRejected(ValueError):
    """A JWK was not loaded; the reason is short and never contains key material."""


def normalize_header_alg(alg: str) -> str:
    return _ALG_ALIASES.get(alg, alg)


@dataclass(frozen=True, slots=True)
class AlgorithmPolicy:
    """An asymmetric allowlist. ``none``, ``HS*`` and anything unsupported is refused when built."""

    algorithms: frozenset[str] = field(default_factory=lambda: frozenset(DEFAULT_ALGORITHMS))

    @classmethod
    def of(cls, algorithms: Iterable[str]) -> AlgorithmPolicy:
        algs: set[str] = set()
        for raw in algorithms:
            alg = normalize_header_alg(str(raw).strip())
            if alg.lower() == "none":
                raise ConfigError("algorithm 'none' is never allowed")
            if alg.upper().startswith("HS"):
                raise ConfigError(f"symmetric algorithm {alg!r} is never allowed in a verifier")
            if alg not in _ALG_KEY_TYPE:
                raise ConfigError(
                    f"unsupported algorithm {alg!r}; use some of {', '.join(SUPPORTED_ALGORITHMS)}"
                )
            algs.add(alg)
        if not algs:
            raise ConfigError("the algorithm allowlist is empty")
        return cls(frozenset(algs))

    def pin(self, jwk: Mapping[str, Any]) -> str:
        """The one algorithm ``jwk`` may verify, or :class:`KeyRejected`."""
        kty = jwk.get("kty")
        crv = jwk.get("crv")
        alg = jwk.get("alg")
        if alg is not None:
            if not isinstance(alg, str):
                raise KeyRejected("alg is not a string")
            alg = normalize_header_alg(alg)
            need = _ALG_KEY_TYPE.get(alg)
            if need is None:
                raise KeyRejected("unsupported alg")
            if need[0] != kty or (need[1] is not None and need[1] != crv):
                raise KeyRejected("alg does not match the key type")
        elif kty == "EC" and crv == "P-256":
            alg = "ES256"
        elif kty == "OKP" and crv == "Ed25519":
            alg = "Ed25519"
        elif kty == "RSA":
            alg = "RS256" if "RS256" in self.algorithms else "PS256"
        else:
            raise KeyRejected("unsupported key type")
        if alg not in self.algorithms:
            raise KeyRejected("alg not allowed")
        return alg


# base64url without padding, strictly: '-'/'_' become the standard alphabet, while '+', '/', '='
# and whitespace become '!', which strict binascii refuses.
_B64_TABLE = bytes.maketrans(b"-_+/= \t\r\n", b"+/!!!!!!!")
_B64_VALUES = {
    c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}


def b64url_decode(data: bytes) -> bytes:
    """Decode unpadded base64url, refusing any other alphabet, padding and non-zero spare bits."""
    rem = len(data) % 4
    if rem == 1:
        raise ValueError("bad base64url length")
    if rem:
        # The unused low bits of the last character must be zero (one canonical encoding only).
        last = _B64_VALUES.get(data[-1])
        if last is None or last & (0x0F if rem == 2 else 0x03):
            raise ValueError("non-canonical base64url")
        return binascii.a2b_base64(data.translate(_B64_TABLE) + b"=" * (4 - rem), strict_mode=True)
    return binascii.a2b_base64(data.translate(_B64_TABLE), strict_mode=True)


def _b64_member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise KeyRejected(f"missing or malformed {name}")
    try:
        return b64url_decode(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise KeyRejected(f"malformed {name}") from None


# ROCA (CVE-2017-15361): Infineon keys have a modulus whose residue modulo each small prime lies
# in the subgroup generated by 65537. The fingerprint test of Nemec et al. checks exactly that.
_ROCA_PRIMES = (
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
)  # fmt: skip


def _subgroup(p: int) -> frozenset[int]:
    out = {1}
    x = 65537 % p
    while x not in out:
        out.add(x)
        x = x * 65537 % p
    return frozenset(out)


_ROCA_SUBGROUPS = tuple((p, _subgroup(p)) for p in _ROCA_PRIMES)


def _roca_fingerprint(n: int) -> bool:
    return all(n % p in group for p, group in _ROCA_SUBGROUPS)


Verifier = Callable[[bytes, bytes], bool]


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A loaded public key pinned to one algorithm; ``verify(signing_input, signature) -> bool``."""

    kid: str
    alg: str
    kty: str
    verify: Verifier = field(repr=False, compare=False)
    # The public members (x.y, n.e or x) as published: two loads of one key compare equal, a
    # different key published under the same kid does not.
    material: str = field(default="", repr=False)

    def describe(self) -> dict[str, str]:
        return {"kid": self.kid, "alg": self.alg, "kty": self.kty}


_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_PKCS1 = padding.PKCS1v15()
# RFC 7518 §3.5: the salt is as long as the hash.
_PSS = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=32)


def _es256(key: ec.EllipticCurvePublicKey) -> Verifier:
    def verify(data: bytes, sig: bytes) -> bool:
        if len(sig) != 64:
            return False
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:], "big")
        if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
            return False
        try:
            key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True

    return verify


def _rsa(key: rsa.RSAPublicKey, pad: padding.AsymmetricPadding) -> Verifier:
    size = (key.key_size + 7) // 8

    def verify(data: bytes, sig: bytes) -> bool:
        if len(sig) != size:
            return False
        try:
            key.verify(sig, data, pad, _SHA256)
        except InvalidSignature:
            return False
        return True

    return verify


def _ed25519(key: Ed25519PublicKey) -> Verifier:
    def verify(data: bytes, sig: bytes) -> bool:
        if len(sig) != 64:
            return False
        try:
            key.verify(sig, data)
        except InvalidSignature:
            return False
        return True

    return verify


def load_jwk(jwk: Any, policy: AlgorithmPolicy) -> VerifyKey:
    """Load one JWKS entry, or raise :class:`KeyRejected` saying why it is not usable."""
    if not isinstance(jwk, Mapping):
        raise KeyRejected("not a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise KeyRejected("missing or malformed kid")
    kty = jwk.get("kty")
    if kty == "oct":
        raise KeyRejected("symmetric key")
    if not _PRIVATE_MEMBERS.isdisjoint(jwk.keys()):
        raise KeyRejected("key has private members")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise KeyRejected("use is not sig")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise KeyRejected("key_ops does not allow verify")
    alg = policy.pin(jwk)
    verify: Verifier
    material: str
    try:
        if kty == "EC":
            x = _b64_member(jwk, "x")
            y = _b64_member(jwk, "y")
            if len(x) != 32 or len(y) != 32:
                raise KeyRejected("bad P-256 coordinate length")
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            )
            # public_key() refuses points that are not on the curve.
            verify = _es256(numbers.public_key())
            material = f"{jwk['x']}.{jwk['y']}"
        elif kty == "RSA":
            n = int.from_bytes(_b64_member(jwk, "n"), "big")
            e = int.from_bytes(_b64_member(jwk, "e"), "big")
            bits = n.bit_length()
            if bits < MIN_RSA_BITS:
                raise KeyRejected("RSA key too small")
            if bits > MAX_RSA_BITS:
                raise KeyRejected("RSA key too large")
            if e < 3 or e % 2 == 0 or e.bit_length() > 32:
                raise KeyRejected("bad RSA exponent")
            if _roca_fingerprint(n):
                raise KeyRejected("RSA key has the ROCA fingerprint")
            public = rsa.RSAPublicNumbers(e, n).public_key()
            verify = _rsa(public, _PKCS1 if alg == "RS256" else _PSS)
            material = f"{jwk['n']}.{jwk['e']}"
        elif kty == "OKP":
            x = _b64_member(jwk, "x")
            if len(x) != 32:
                raise KeyRejected("bad Ed25519 key length")
            verify = _ed25519(Ed25519PublicKey.from_public_bytes(x))
            material = str(jwk["x"])
        else:  # pragma: no cover - pin() already refused other key types
            raise KeyRejected("unsupported key type")
    except KeyRejected:
        raise
    except (ValueError, TypeError, OverflowError):
        raise KeyRejected("invalid key") from None
    return VerifyKey(kid=kid, alg=alg, kty=str(kty), verify=verify, material=material)
