"""JWK members, key loading (JWK and PEM), RFC 7638 thumbprints, and the sign/verify primitives.

Public keys are checked when loaded: the EC point is on its curve (``cryptography`` refuses it
otherwise) with coordinates of the curve's exact length, RSA moduli are 2048-8192 bits with a sane
public exponent and without the ROCA fingerprint, Ed25519 keys are 32 bytes. A JWK with private
members is never loaded as a public key, a symmetric (``oct``) key never at all.

Every loaded verification key is pinned to ONE algorithm (:class:`VerifyKey`): a token is checked
only with a key whose pinned algorithm equals the token's ``alg``, so key-confusion attacks (HS256
keyed with an RSA public key, an ES256 header against an RSA key, ...) have nothing to work with.
Signature encodings are checked exactly: ECDSA is ``r || s`` of twice the coordinate size with
``0 < r, s < n``, RSA signatures are exactly the modulus length, Ed25519 signatures 64 bytes.
High-s ECDSA signatures are accepted: RFC 7518 does not require low-s, common signers (OpenSSL,
KMS) emit both, and a malleated signature does not change what was signed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from s2s.jose._algorithms import (
    ALGORITHMS,
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    Algorithm,
    AlgorithmPolicy,
    normalize_alg,
)
from s2s.jose._b64 import b64url_decode, b64url_encode
from s2s.jose.errors import AlgorithmRejected, KeyRejected

__all__ = [
    "PRIVATE_MEMBERS",
    "PrivateKey",
    "PublicKey",
    "SignFunction",
    "VerifyFunction",
    "VerifyKey",
    "check_signing_use",
    "ecdsa_der_to_raw",
    "generate_private_key",
    "load_jwk",
    "load_pem_private_key",
    "load_verify_key",
    "private_jwk_of",
    "private_key_from_jwk",
    "public_jwk_of",
    "public_key_from_jwk",
    "public_key_to_jwk",
    "sign_function",
    "thumbprint",
    "verify_function",
]

PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# The members of a public JWK, in the order s2s writes them (key files keep their bytes).
_PUBLIC_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "EC": ("kty", "crv", "x", "y"),
    "RSA": ("kty", "n", "e"),
    "OKP": ("kty", "crv", "x"),
}
_CURVES: Mapping[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
}
_CURVE_NAMES: Mapping[str, str] = {"secp256r1": "P-256", "secp384r1": "P-384"}
_HASHES: Mapping[str, hashes.HashAlgorithm] = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384()}
_ORDERS = {
    32: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    48: int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
}
_PKCS1 = padding.PKCS1v15()

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | Ed25519PrivateKey
# signing input -> JWS signature; (signing input, signature) -> whether it verifies.
SignFunction = Callable[[bytes], bytes]
VerifyFunction = Callable[[bytes, bytes], bool]


# -- JWK members ---------------------------------------------------------------------------------


def public_jwk_of(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The public members of a JWK (``kty`` first), dropping anything else, private parts included."""
    if not isinstance(jwk, Mapping):
        raise KeyRejected("a JWK must be a JSON object")
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _PUBLIC_MEMBERS:
        raise KeyRejected(f"unsupported key type {kty!r}" if isinstance(kty, str) else "JWK without a kty")
    members = _PUBLIC_MEMBERS[kty]
    missing = [name for name in members if not isinstance(jwk.get(name), str)]
    if missing:
        raise KeyRejected(f"{kty} JWK lacks {', '.join(missing)}")
    return {name: jwk[name] for name in members}


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of the public part of ``jwk`` (the members as written)."""
    required = public_jwk_of(jwk)
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def check_signing_use(jwk: Mapping[str, Any]) -> None:
    """A key whose ``use`` or ``key_ops`` exclude signature verification is not a signing key."""
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise KeyRejected("use is not sig")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise KeyRejected("key_ops does not allow verify")


def _member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise KeyRejected(f"missing or malformed {name}")
    try:
        return b64url_decode(value)
    except ValueError:
        raise KeyRejected(f"malformed {name}") from None


def _uint(jwk: Mapping[str, Any], name: str) -> int:
    return int.from_bytes(_member(jwk, name), "big")


def _b64_uint(value: int, size: int | None = None) -> str:
    length = size if size is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(length, "big"))


# -- public keys ---------------------------------------------------------------------------------

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


def _check_rsa_public(n: int, e: int) -> None:
    bits = n.bit_length()
    if bits < MIN_RSA_BITS:
        raise KeyRejected("RSA key too small")
    if bits > MAX_RSA_BITS:
        raise KeyRejected("RSA key too large")
    if e < 3 or e % 2 == 0 or e.bit_length() > 32:
        raise KeyRejected("bad RSA exponent")
    if all(n % p in group for p, group in _ROCA_SUBGROUPS):
        raise KeyRejected("RSA key has the ROCA fingerprint")


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """The ``cryptography`` public key of an EC (P-256, P-384), RSA or Ed25519 JWK, checked."""
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            curve = _CURVES.get(str(jwk.get("crv")))
            if curve is None:
                raise KeyRejected("unsupported curve")
            x, y = _member(jwk, "x"), _member(jwk, "y")
            if len(x) != curve[1] or len(y) != curve[1]:
                raise KeyRejected(f"bad {jwk['crv']} coordinate length")
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve[0]
            )
            # public_key() refuses points that are not on the curve.
            return numbers.public_key()
        if kty == "RSA":
            n, e = _uint(jwk, "n"), _uint(jwk, "e")
            _check_rsa_public(n, e)
            return rsa.RSAPublicNumbers(e, n).public_key()
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise KeyRejected("unsupported curve")
            x = _member(jwk, "x")
            if len(x) != 32:
                raise KeyRejected("bad Ed25519 key length")
            return Ed25519PublicKey.from_public_bytes(x)
    except KeyRejected:
        raise
    except (ValueError, TypeError, OverflowError, UnsupportedAlgorithm):
        raise KeyRejected("invalid key") from None
    if kty == "oct":
        raise KeyRejected("symmetric key")
    raise KeyRejected("unsupported key type")


def public_key_to_jwk(key: PublicKey) -> dict[str, Any]:
    """The public JWK members of a ``cryptography`` public key."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = _CURVE_NAMES.get(key.curve.name)
        if crv is None:
            raise KeyRejected("unsupported curve")
        size = _CURVES[crv][1]
        numbers = key.public_numbers()
        return {"kty": "EC", "crv": crv, "x": _b64_uint(numbers.x, size), "y": _b64_uint(numbers.y, size)}
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return {"kty": "RSA", "n": _b64_uint(rsa_numbers.n), "e": _b64_uint(rsa_numbers.e)}
    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    raise KeyRejected("unsupported key type")


# -- private keys --------------------------------------------------------------------------------


def private_key_from_jwk(jwk: Mapping[str, Any]) -> PrivateKey:
    """The private key of a JWK, checked against the public members the JWK carries.

    ``cryptography`` checks EC and RSA private numbers against their public numbers itself; an
    Ed25519 ``d`` is checked by deriving its public key and comparing it with ``x`` (signing uses
    ``d`` alone, so a swapped ``d`` would sign tokens that the JWK's own ``x`` never verifies).
    """
    if not isinstance(jwk, Mapping):
        raise KeyRejected("a JWK must be a JSON object")
    kty = jwk.get("kty")
    public = public_key_from_jwk(jwk)
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            d = _uint(jwk, "d")
            return ec.EllipticCurvePrivateNumbers(d, public.public_numbers()).private_key()
        if isinstance(public, rsa.RSAPublicKey):
            pub = public.public_numbers()
            d = _uint(jwk, "d")
            if all(isinstance(jwk.get(m), str) for m in ("p", "q", "dp", "dq", "qi")):
                p, q = _uint(jwk, "p"), _uint(jwk, "q")
                dp, dq, qi = _uint(jwk, "dp"), _uint(jwk, "dq"), _uint(jwk, "qi")
            else:
                p, q = rsa.rsa_recover_prime_factors(pub.n, pub.e, d)
                dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
            return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, pub).private_key()
        private = Ed25519PrivateKey.from_private_bytes(_member(jwk, "d"))
    except KeyRejected:
        raise
    except (ValueError, TypeError, OverflowError, UnsupportedAlgorithm):
        raise KeyRejected(f"invalid {kty} private key") from None
    if private.public_key() != public:
        raise KeyRejected("the private key does not match its public key")
    return private


def private_jwk_of(key: PrivateKey) -> dict[str, Any]:
    """The private JWK of a ``cryptography`` private key (public members included)."""
    jwk = public_key_to_jwk(key.public_key())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk["d"] = _b64_uint(key.private_numbers().private_value, _CURVES[jwk["crv"]][1])
    elif isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        jwk.update(
            d=_b64_uint(numbers.d),
            p=_b64_uint(numbers.p),
            q=_b64_uint(numbers.q),
            dp=_b64_uint(numbers.dmp1),
            dq=_b64_uint(numbers.dmq1),
            qi=_b64_uint(numbers.iqmp),
        )
    else:
        raw = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        jwk["d"] = b64url_encode(raw)
    return jwk


def load_pem_private_key(pem: bytes, password: bytes | None = None) -> PrivateKey:
    """An EC (P-256, P-384), RSA or Ed25519 private key from PEM; errors never quote the key."""
    try:
        loaded = serialization.load_pem_private_key(pem, password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # The type names the problem (bad password, format), never the key.
        raise KeyRejected(f"the PEM private key cannot be loaded ({type(exc).__name__})") from None
    if isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name in _CURVE_NAMES:
        return loaded
    if isinstance(loaded, rsa.RSAPrivateKey | Ed25519PrivateKey):
        return loaded
    raise KeyRejected(f"{type(loaded).__name__} keys are not supported")


def generate_private_key(alg: str) -> PrivateKey:
    """A new private key for ``alg`` (RSA: 2048 bits, exponent 65537)."""
    row = ALGORITHMS.get(alg)
    if row is None:
        raise AlgorithmRejected("unsupported algorithm")
    if row.kty == "EC":
        return ec.generate_private_key(_CURVES[str(row.crv)][0])
    if row.kty == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    return Ed25519PrivateKey.generate()


# -- signatures ----------------------------------------------------------------------------------


def ecdsa_der_to_raw(der: bytes, size: int) -> bytes:
    """A DER ``ECDSA-Sig-Value`` as the fixed-width ``r || s`` that JWS uses (RFC 7518 §3.4).

    DER integers are minimal and signed: a half may be shorter than ``size`` (leading zeros
    dropped) or one byte longer (a 0x00 added when the top bit is set). Both are normalised;
    anything else is a ValueError.
    """
    r, s = decode_dss_signature(der)
    limit = 1 << (8 * size)
    if not (0 < r < limit and 0 < s < limit):
        raise ValueError("ECDSA signature of the wrong size")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _row(alg: str, key: PublicKey | PrivateKey) -> Algorithm:
    row = ALGORITHMS.get(normalize_alg(alg))
    if row is None:
        raise AlgorithmRejected("unsupported algorithm")
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        fits = row.kty == "EC" and _CURVE_NAMES.get(key.curve.name) == row.crv
    elif isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        fits = row.kty == "RSA" and key.key_size >= MIN_RSA_BITS
    else:
        fits = row.kty == "OKP"
    if not fits:
        raise AlgorithmRejected(f"this key cannot be used with {alg}")
    return row


def _rsa_padding(row: Algorithm) -> padding.AsymmetricPadding:
    if not row.pss:
        return _PKCS1
    # RFC 7518 §3.5: MGF1 with the same hash, the salt as long as the hash output.
    digest = _HASHES[str(row.hash)]
    return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)


def sign_function(key: PrivateKey, alg: str) -> SignFunction:
    """``signing input -> JWS signature`` for ``key`` as ``alg`` (checked to fit the key)."""
    row = _row(alg, key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        ecdsa = ec.ECDSA(_HASHES[str(row.hash)])
        size = row.coordinate_bytes
        ec_key = key

        def sign_ecdsa(data: bytes) -> bytes:
            # JWS wants the fixed-width r || s, not the DER the library returns.
            return ecdsa_der_to_raw(ec_key.sign(data, ecdsa), size)

        return sign_ecdsa
    if isinstance(key, rsa.RSAPrivateKey):
        pad, digest, rsa_key = _rsa_padding(row), _HASHES[str(row.hash)], key

        def sign_rsa(data: bytes) -> bytes:
            return rsa_key.sign(data, pad, digest)

        return sign_rsa
    return key.sign


def verify_function(key: PublicKey, alg: str) -> VerifyFunction:
    """``(signing input, signature) -> bool`` for ``key`` as ``alg``; encodings checked exactly."""
    row = _row(alg, key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        ecdsa = ec.ECDSA(_HASHES[str(row.hash)])
        size = row.coordinate_bytes
        order = _ORDERS[size]
        ec_key = key

        def verify_ecdsa(data: bytes, sig: bytes) -> bool:
            if len(sig) != 2 * size:
                return False
            r = int.from_bytes(sig[:size], "big")
            s = int.from_bytes(sig[size:], "big")
            # 0 < r, s < n (unsigned: non-zero is positive), in the fewest steps of the hot path.
            if not (r and s and r < order > s):
                return False
            try:
                ec_key.verify(encode_dss_signature(r, s), data, ecdsa)
            except InvalidSignature:
                return False
            return True

        return verify_ecdsa
    if isinstance(key, rsa.RSAPublicKey):
        pad, digest, rsa_key = _rsa_padding(row), _HASHES[str(row.hash)], key
        length = (key.key_size + 7) // 8

        def verify_rsa(data: bytes, sig: bytes) -> bool:
            if len(sig) != length:
                return False
            try:
                rsa_key.verify(sig, data, pad, digest)
            except InvalidSignature:
                return False
            return True

        return verify_rsa
    ed_key = key

    def verify_ed25519(data: bytes, sig: bytes) -> bool:
        if len(sig) != 64:
            return False
        try:
            ed_key.verify(sig, data)
        except InvalidSignature:
            return False
        return True

    return verify_ed25519


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A loaded public key pinned to one algorithm; ``verify(signing_input, signature) -> bool``."""

    kid: str
    alg: str
    kty: str
    verify: VerifyFunction = field(repr=False, compare=False)
    # The public members (x.y, n.e or x) as published: two loads of one key compare equal, a
    # different key published under the same kid does not.
    material: str = field(default="", repr=False)

    def describe(self) -> dict[str, str]:
        return {"kid": self.kid, "alg": self.alg, "kty": self.kty}


def load_verify_key(jwk: Mapping[str, Any], alg: str, kid: str = "") -> VerifyKey:
    """A public JWK as a :class:`VerifyKey` pinned to ``alg`` (which must fit the key)."""
    if not PRIVATE_MEMBERS.isdisjoint(jwk.keys()):
        raise KeyRejected("key has private members")
    public = public_key_from_jwk(jwk)
    try:
        verify = verify_function(public, alg)
    except AlgorithmRejected:
        raise KeyRejected("alg does not match the key type") from None
    members = _PUBLIC_MEMBERS[str(jwk["kty"])][1:]
    return VerifyKey(
        kid=kid, alg=alg, kty=str(jwk["kty"]), verify=verify, material=".".join(jwk[m] for m in members)
    )


def load_jwk(jwk: Any, policy: AlgorithmPolicy) -> VerifyKey:
    """Load one JWKS entry for a verifier, or raise :class:`KeyRejected` saying why it is unusable."""
    if not isinstance(jwk, Mapping):
        raise KeyRejected("not a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise KeyRejected("missing or malformed kid")
    if jwk.get("kty") == "oct":
        raise KeyRejected("symmetric key")
    if not PRIVATE_MEMBERS.isdisjoint(jwk.keys()):
        raise KeyRejected("key has private members")
    check_signing_use(jwk)
    return load_verify_key(jwk, policy.pin(jwk), kid)
