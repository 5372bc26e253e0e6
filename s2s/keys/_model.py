"""Signing key records and keysets.

A :class:`SigningKey` is data only: its kid is the RFC 7638 thumbprint of its public JWK, its
private part (if held locally) never appears in ``repr``, a JWKS or ``to_public_dict``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from s2s.errors import ConfigError
from s2s.jose import (
    SIGNING_ALGS,
    KeyRejected,
    b64url_decode,
    generate_private_key,
    private_jwk_of,
    private_key_from_jwk,
    public_jwk_of,
    public_key_from_jwk,
    thumbprint,
)
from s2s.keys.errors import KeyNotFound

__all__ = [
    "DEFAULT_ALG",
    "SIGNING_ALGS",
    "KeySet",
    "KeyState",
    "SigningKey",
    "generate_key",
    "public_jwk_of",
    "thumbprint",
]

DEFAULT_ALG = "ES256"
_PROVEN: set[bytes] = set()


class KeyState(enum.StrEnum):
    NEXT = "next"
    CURRENT = "current"
    PREVIOUS = "previous"
    RETIRED = "retired"
    REVOKED = "revoked"

    @property
    def published(self) -> bool:
        return self in (KeyState.NEXT, KeyState.CURRENT, KeyState.PREVIOUS)


def _private_matches(private: Mapping[str, Any], public: Mapping[str, Any]) -> bool:
    """Whether the private key itself belongs to ``public``.

    Comparing the public members a private JWK repeats is not enough: an Ed25519 key signs with
    ``d`` alone, so a record whose ``x`` was kept while ``d`` was swapped would sign tokens that
    its own kid never verifies. :func:`s2s.jose.private_key_from_jwk` checks the private numbers
    against the public ones.
    """
    if public_jwk_of(private) != public:
        return False
    # Checking an RSA key costs tens of milliseconds and replicas reload the keyset every few
    # seconds: remember the records already proven (by digest, so no key material is kept).
    digest = hashlib.sha256(json.dumps(dict(private), sort_keys=True).encode()).digest()
    if digest in _PROVEN:
        return True
    try:
        private_key_from_jwk(private)
    except KeyRejected:
        return False
    if len(_PROVEN) > 1024:
        _PROVEN.clear()
    _PROVEN.add(digest)
    return True


def _check_key_fits_alg(kid: str, alg: str, public: Mapping[str, Any]) -> None:
    """A stored key must be the kind of key its alg signs with: no 1024-bit RSA, no P-384 for ES256."""
    kty, param = SIGNING_ALGS[alg]
    if public["kty"] != kty:
        raise ConfigError(f"key {kid!r}: a {public['kty']} key cannot sign {alg}")
    if kty == "RSA":
        bits = int.from_bytes(b64url_decode(str(public["n"])), "big").bit_length()
        if bits < int(param):
            raise ConfigError(f"key {kid!r}: RSA keys need at least {param} bits, this one has {bits}")
    elif public.get("crv") != param:
        raise ConfigError(f"key {kid!r}: {alg} needs curve {param}")
    # Parses the key: a point off its curve or a broken modulus is refused here, not when signing.
    public_key_from_jwk(public)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    state: KeyState
    created_at: float
    public_jwk: Mapping[str, Any]
    # When the key became current / stopped being current / left the JWKS.
    activated_at: float | None = None
    deactivated_at: float | None = None
    retired_at: float | None = None
    revoked_at: float | None = None
    # Exactly one of these says where the private key is. repr=False keeps it out of logs.
    private_jwk: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    kms_key_id: str | None = None

    @property
    def published(self) -> bool:
        return self.state.published

    def with_state(self, state: KeyState, **times: float | None) -> SigningKey:
        return replace(self, state=state, **times)  # type: ignore[arg-type]

    def public_jwk_entry(self) -> dict[str, Any]:
        """The key as it appears in a JWKS."""
        entry = dict(public_jwk_of(self.public_jwk))
        entry.update(kid=self.kid, alg=self.alg, use="sig")
        return entry

    def to_public_dict(self) -> dict[str, Any]:
        """Everything about the key except private material: safe for tables, JSON and logs."""
        out: dict[str, Any] = {
            "kid": self.kid,
            "alg": self.alg,
            "state": self.state.value,
            "created_at": self.created_at,
            "activated_at": self.activated_at,
            "deactivated_at": self.deactivated_at,
            "retired_at": self.retired_at,
            "revoked_at": self.revoked_at,
        }
        if self.kms_key_id:
            out["kms_key_id"] = self.kms_key_id
        return out

    def to_document(self) -> dict[str, Any]:
        """The stored form, private part included (key stores only)."""
        doc = self.to_public_dict()
        doc["public_jwk"] = dict(public_jwk_of(self.public_jwk))
        if self.private_jwk is not None:
            doc["private_jwk"] = dict(self.private_jwk)
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> SigningKey:
        try:
            alg = str(doc["alg"])
            if alg not in SIGNING_ALGS:
                raise ConfigError(f"key {doc.get('kid')!r} has unsupported alg {alg!r}")
            public = public_jwk_of(doc["public_jwk"])
            kid = str(doc["kid"])
            _check_key_fits_alg(kid, alg, public)
            if thumbprint(public) != kid:
                raise ConfigError(f"key {kid!r}: kid is not the thumbprint of its public key")
            private = doc.get("private_jwk")
            if private is not None and not _private_matches(private, public):
                raise ConfigError(f"key {kid!r}: private key does not match its public key")

            def t(name: str) -> float | None:
                v = doc.get(name)
                if v is None:
                    return None
                # json reads NaN and Infinity: every timing comparison with them would be false.
                if not math.isfinite(value := float(v)):
                    raise ValueError(name)
                return value

            created_at = t("created_at")
            if created_at is None:
                raise KeyError("created_at")
            return cls(
                kid=kid,
                alg=alg,
                state=KeyState(doc["state"]),
                created_at=created_at,
                public_jwk=public,
                activated_at=t("activated_at"),
                deactivated_at=t("deactivated_at"),
                retired_at=t("retired_at"),
                revoked_at=t("revoked_at"),
                private_jwk=dict(private) if private is not None else None,
                kms_key_id=doc.get("kms_key_id"),
            )
        except ConfigError:
            raise
        except KeyRejected as exc:
            raise ConfigError(f"malformed key record ({exc.description})") from None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            # Never echo the document: it may hold a private key.
            raise ConfigError(f"malformed key record ({type(exc).__name__})") from None


def generate_key(alg: str = DEFAULT_ALG, *, now: float, state: KeyState = KeyState.NEXT) -> SigningKey:
    """A new local key pair for ``alg``."""
    if alg not in SIGNING_ALGS:
        raise ConfigError(f"unsupported signing alg {alg!r}; use one of {', '.join(SIGNING_ALGS)}")
    private = private_jwk_of(generate_private_key(alg))
    public = public_jwk_of(private)
    activated = now if state is KeyState.CURRENT else None
    return SigningKey(
        kid=thumbprint(public),
        alg=alg,
        state=state,
        created_at=now,
        public_jwk=public,
        activated_at=activated,
        private_jwk=private,
    )


@dataclass(frozen=True, slots=True)
class KeySet:
    """An ordered, immutable collection of keys. At most one is current, at most one next."""

    keys: tuple[SigningKey, ...] = ()

    FORMAT = "s2s.keyset/1"

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.keys]
        if len(kids) != len(set(kids)):
            raise ConfigError("duplicate kid in keyset")
        for state in (KeyState.CURRENT, KeyState.NEXT):
            if sum(1 for k in self.keys if k.state is state) > 1:
                raise ConfigError(f"more than one {state.value} key in keyset")

    def __iter__(self) -> Iterator[SigningKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def _one(self, state: KeyState) -> SigningKey | None:
        return next((k for k in self.keys if k.state is state), None)

    @property
    def current(self) -> SigningKey | None:
        return self._one(KeyState.CURRENT)

    @property
    def next(self) -> SigningKey | None:
        return self._one(KeyState.NEXT)

    def in_state(self, *states: KeyState) -> tuple[SigningKey, ...]:
        return tuple(k for k in self.keys if k.state in states)

    @property
    def published(self) -> tuple[SigningKey, ...]:
        return tuple(k for k in self.keys if k.published)

    def get(self, kid: str) -> SigningKey:
        for k in self.keys:
            if k.kid == kid:
                return k
        raise KeyNotFound(f"no key with kid {kid!r}")

    def replace_key(self, key: SigningKey) -> KeySet:
        return KeySet(tuple(key if k.kid == key.kid else k for k in self.keys))

    def add(self, key: SigningKey) -> KeySet:
        return KeySet((*self.keys, key))

    def without(self, kids: Iterable[str]) -> KeySet:
        drop = set(kids)
        return KeySet(tuple(k for k in self.keys if k.kid not in drop))

    def jwks(self) -> dict[str, Any]:
        """The public JWKS: next, current and previous keys only (current first)."""
        order = {KeyState.CURRENT: 0, KeyState.NEXT: 1, KeyState.PREVIOUS: 2}
        keys = sorted(self.published, key=lambda k: order[k.state])
        return {"keys": [k.public_jwk_entry() for k in keys]}

    def to_document(self) -> dict[str, Any]:
        return {"format": self.FORMAT, "keys": [k.to_document() for k in self.keys]}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> KeySet:
        if not isinstance(doc, Mapping) or doc.get("format") != cls.FORMAT:
            raise ConfigError(f"not an {cls.FORMAT} document")
        keys = doc.get("keys")
        if not isinstance(keys, list):
            raise ConfigError("keyset document has no key list")
        return cls(tuple(SigningKey.from_document(k) for k in keys))
