"""The algorithm table: every JWS algorithm s2s knows, the key each needs, and who may use it.

One row per algorithm (RFC 7518 names, and RFC 9864's ``Ed25519``). ``EdDSA``, the polymorphic
name RFC 9864 deprecates, is read as ``Ed25519`` and nothing else: an Ed448 key is never loaded,
so ``EdDSA`` cannot reach Ed448. The roles below are views of the table:

* :data:`VERIFIER_ALGORITHMS` — what an access-token verifier may allow (its default allowlist);
* :data:`SIGNING_ALGS` — what the issuer's own keys sign with (kty and curve, or RSA bits);
* :data:`CLIENT_ASSERTION_ALGS` — what a client may sign a ``private_key_jwt`` assertion with,
  by key kind (``EC:P-256``, ``RSA``, ...).

``none`` and every ``HS*`` algorithm are not in the table: a symmetric key is never loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from s2s.errors import ConfigError
from s2s.jose.errors import KeyRejected

__all__ = [
    "ALGORITHMS",
    "CLIENT_ASSERTION_ALGS",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "SIGNING_ALGS",
    "VERIFIER_ALGORITHMS",
    "Algorithm",
    "AlgorithmPolicy",
    "algs_for_jwk",
    "key_kind",
    "normalize_alg",
]

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    kty: str  # "EC", "RSA" or "OKP"
    crv: str | None  # the curve of EC and OKP keys
    hash: str | None  # "SHA256" / "SHA384"; None for EdDSA (the hash is part of the scheme)
    # EC: bytes of one half of the r || s signature (RFC 7518 §3.4); 0 otherwise.
    coordinate_bytes: int = 0
    pss: bool = False

    @property
    def kind(self) -> str:
        return self.kty if self.crv is None else f"{self.kty}:{self.crv}"


ALGORITHMS: Mapping[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("ES256", "EC", "P-256", "SHA256", coordinate_bytes=32),
        Algorithm("ES384", "EC", "P-384", "SHA384", coordinate_bytes=48),
        Algorithm("RS256", "RSA", None, "SHA256"),
        Algorithm("PS256", "RSA", None, "SHA256", pss=True),
        Algorithm("Ed25519", "OKP", "Ed25519", None),
    )
}
_ALIASES: Mapping[str, str] = {"EdDSA": "Ed25519"}

VERIFIER_ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "PS256", "Ed25519")
# alg -> (kty, curve or RSA bits) of the keys s2s generates and signs with.
SIGNING_ALGS: Mapping[str, tuple[str, str | int]] = {
    name: (ALGORITHMS[name].kty, ALGORITHMS[name].crv or MIN_RSA_BITS) for name in VERIFIER_ALGORITHMS
}
# key kind -> the algorithms a client key of that kind may sign assertions with (EdDSA: the
# deprecated name, still what most libraries send).
CLIENT_ASSERTION_ALGS: Mapping[str, tuple[str, ...]] = {
    "EC:P-256": ("ES256",),
    "EC:P-384": ("ES384",),
    "RSA": ("RS256", "PS256"),
    "OKP:Ed25519": ("Ed25519", "EdDSA"),
}


def normalize_alg(alg: str) -> str:
    """The table's name for ``alg`` (``EdDSA`` -> ``Ed25519``); other names unchanged."""
    return _ALIASES.get(alg, alg)


def key_kind(jwk: Mapping[str, Any]) -> str:
    """``EC:<crv>``, ``OKP:<crv>`` or ``RSA``: what decides which algorithms a JWK may use."""
    kty = jwk.get("kty")
    return "RSA" if kty == "RSA" else f"{kty}:{jwk.get('crv')}"


def algs_for_jwk(
    jwk: Mapping[str, Any], allowed: Mapping[str, tuple[str, ...]] = CLIENT_ASSERTION_ALGS
) -> tuple[str, ...]:
    """The algorithms ``jwk`` may be used with under ``allowed`` (its own ``alg`` if it has one)."""
    algs = allowed.get(key_kind(jwk), ())
    alg = jwk.get("alg")
    if alg is not None:
        return (alg,) if alg in algs else ()
    return algs


@dataclass(frozen=True, slots=True)
class AlgorithmPolicy:
    """An asymmetric allowlist. ``none``, ``HS*`` and anything unsupported is refused when built."""

    algorithms: frozenset[str] = field(default_factory=lambda: frozenset(VERIFIER_ALGORITHMS))

    @classmethod
    def of(cls, algorithms: Iterable[str]) -> AlgorithmPolicy:
        algs: set[str] = set()
        for raw in algorithms:
            alg = normalize_alg(str(raw).strip())
            if alg.lower() == "none":
                raise ConfigError("algorithm 'none' is never allowed")
            if alg.upper().startswith("HS"):
                raise ConfigError(f"symmetric algorithm {alg!r} is never allowed in a verifier")
            if alg not in VERIFIER_ALGORITHMS:
                raise ConfigError(
                    f"unsupported algorithm {alg!r}; use some of {', '.join(VERIFIER_ALGORITHMS)}"
                )
            algs.add(alg)
        if not algs:
            raise ConfigError("the algorithm allowlist is empty")
        return cls(frozenset(algs))

    def pin(self, jwk: Mapping[str, Any]) -> str:
        """The one algorithm ``jwk`` may verify, or :class:`KeyRejected`.

        Its JWK ``alg`` if it has one, else the algorithm its ``kty``/``crv`` implies. RSA keys
        without ``alg`` (Entra ID publishes them that way) are pinned to RS256 when RS256 is
        allowed, else to PS256: one key never verifies both paddings.
        """
        kty = jwk.get("kty")
        crv = jwk.get("crv")
        alg = jwk.get("alg")
        if alg is not None:
            if not isinstance(alg, str):
                raise KeyRejected("alg is not a string")
            alg = normalize_alg(alg)
            row = ALGORITHMS.get(alg)
            if row is None or alg not in VERIFIER_ALGORITHMS:
                raise KeyRejected("unsupported alg")
            if row.kty != kty or (row.crv is not None and row.crv != crv):
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
