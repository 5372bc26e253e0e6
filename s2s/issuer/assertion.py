"""RFC 7523 ``private_key_jwt`` client authentication.

The client signs a short-lived JWT (iss = sub = its client id, aud = our token endpoint or
issuer, a unique ``jti``) with a private key whose public half is in its registry entry.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key
from joserfc.jws import JWSRegistry

from s2s.clock import Clock, system_clock
from s2s.errors import S2SError
from s2s.issuer.clients import CLIENT_ASSERTION_ALGS, Client, algs_for_jwk

__all__ = [
    "JWT_BEARER_ASSERTION_TYPE",
    "AssertionVerifier",
    "InMemoryReplayCache",
    "InvalidAssertion",
    "ReplayCache",
    "assertion_subject",
]

JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_BYTES = 8192
# Header members that would change how the signature is checked or where keys come from:
# we never take a key from the token and understand no critical extension.
_REFUSED_HEADER = frozenset({"crit", "b64", "zip", "jku", "jwk", "x5u", "x5c", "enc"})
_REGISTRIES = {alg: JWSRegistry(algorithms=[alg]) for algs in CLIENT_ASSERTION_ALGS.values() for alg in algs}


class InvalidAssertion(S2SError):
    """The client assertion was not accepted."""

    error = "invalid_client"


class ReplayCache(Protocol):
    def seen_or_add(self, key: str, expires_at: float) -> bool:
        """True if ``key`` was already recorded and has not expired; otherwise record it, return False."""
        ...


class InMemoryReplayCache:
    """One process's memory. Replicas need a shared cache (DynamoDB) to refuse cross-replica replays."""

    def __init__(self, clock: Clock = system_clock, *, max_entries: int = 200_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen_or_add(self, key: str, expires_at: float) -> bool:
        now = self._clock.now()
        with self._lock:
            until = self._seen.get(key)
            if until is not None and until > now:
                return True
            if len(self._seen) >= self._max:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
                if len(self._seen) >= self._max:
                    # Forgetting live entries would allow replays: refuse instead (fail closed).
                    return True
            self._seen[key] = expires_at
            return False

    def __len__(self) -> int:
        return len(self._seen)


def _b64json(part: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidAssertion("client assertion is not a JWT") from None


def _split(assertion: str) -> list[str]:
    if len(assertion) > MAX_ASSERTION_BYTES or not assertion.isascii():
        raise InvalidAssertion("client assertion is not a JWT")
    parts = assertion.split(".")
    if len(parts) != 3 or not all(parts):
        raise InvalidAssertion("client assertion is not a compact JWS")
    return parts


def assertion_subject(assertion: str) -> str:
    """The (unverified) ``iss`` of an assertion: only to find which client's keys to check it with."""
    claims = _b64json(_split(assertion)[1])
    iss = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(iss, str) or not iss:
        raise InvalidAssertion("client assertion has no iss")
    return iss


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidAssertion(f"client assertion {name} is not a number")
    try:
        number = float(value)  # an integer of hundreds of digits overflows here
    except OverflowError:
        number = math.inf
    # json reads NaN and Infinity; a NaN exp would pass every comparison below and never expire.
    if not math.isfinite(number):
        raise InvalidAssertion(f"client assertion {name} is not a number")
    return number


class AssertionVerifier:
    """Checks ``private_key_jwt`` assertions for one issuer."""

    def __init__(
        self,
        audiences: Iterable[str],
        replay: ReplayCache,
        *,
        clock: Clock = system_clock,
        max_lifetime: float = 300,
        leeway: float = 30,
    ) -> None:
        self._audiences = frozenset(audiences)
        self._replay = replay
        self._clock = clock
        self._max_lifetime = max_lifetime
        self._leeway = leeway
        self._keys: dict[tuple[str, str], tuple[ECKey | RSAKey | OKPKey, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def _key(self, client: Client, kid: str) -> tuple[ECKey | RSAKey | OKPKey, tuple[str, ...]]:
        for jwk in client.jwks:
            if jwk["kid"] != kid:
                continue
            # The cache key includes the key itself, so a re-registered kid cannot hit a stale entry.
            cache_key = (client.client_id, json.dumps(jwk, sort_keys=True))
            hit = self._keys.get(cache_key)
            if hit is None:
                key = import_key(dict(jwk))
                if not isinstance(key, ECKey | RSAKey | OKPKey):
                    raise InvalidAssertion("client key is not asymmetric")
                hit = (key, algs_for_jwk(jwk))
                with self._lock:
                    if len(self._keys) > 10_000:
                        self._keys.clear()
                    self._keys[cache_key] = hit
            return hit
        raise InvalidAssertion("client assertion kid is not one of the client's registered keys")

    def verify(self, assertion: str, client: Client) -> dict[str, Any]:
        """The verified claims, or :class:`InvalidAssertion` (descriptions never quote the token)."""
        if not client.jwks:
            raise InvalidAssertion("client is not registered for private_key_jwt")
        parts = _split(assertion)
        header = _b64json(parts[0])
        if not isinstance(header, dict):
            raise InvalidAssertion("client assertion header is not a JSON object")
        if _REFUSED_HEADER & set(header):
            raise InvalidAssertion("client assertion header uses a refused member")
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidAssertion("client assertion has no kid")
        key, allowed = self._key(client, kid)
        if not isinstance(alg, str) or alg not in allowed:
            raise InvalidAssertion("client assertion algorithm is not allowed for its key")
        try:
            signed = jws.deserialize_compact(assertion, key, registry=_REGISTRIES[alg])
            claims = json.loads(signed.payload)
        except Exception:
            # joserfc raises TypeError/ValueError as well as JoseError on crafted input.
            raise InvalidAssertion("client assertion signature is invalid") from None
        if not isinstance(claims, dict):
            raise InvalidAssertion("client assertion payload is not a JSON object")
        return self._check_claims(claims, client)

    def _check_claims(self, claims: dict[str, Any], client: Client) -> dict[str, Any]:
        now = self._clock.now()
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise InvalidAssertion("client assertion iss and sub must both be the client id")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in self._audiences for a in auds):
            raise InvalidAssertion("client assertion aud is not this token endpoint or issuer")
        exp = _number(claims, "exp")
        if exp is None:
            raise InvalidAssertion("client assertion has no exp")
        if now >= exp + self._leeway:
            raise InvalidAssertion("client assertion has expired")
        if exp > now + self._max_lifetime + self._leeway:
            raise InvalidAssertion(f"client assertion lives too long (max {self._max_lifetime:g}s)")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now + self._leeway:
            raise InvalidAssertion("client assertion is not valid yet")
        iat = _number(claims, "iat")
        if iat is not None and iat > now + self._leeway:
            raise InvalidAssertion("client assertion was issued in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise InvalidAssertion("client assertion has no jti")
        if self._replay.seen_or_add(f"{client.client_id}\0{jti}", exp + self._leeway):
            raise InvalidAssertion("client assertion was already used")
        return claims
