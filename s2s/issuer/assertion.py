"""RFC 7523 ``private_key_jwt`` client authentication.

The client signs a short-lived JWT (iss = sub = its client id, aud = our token endpoint or
issuer, a unique ``jti``) with a private key whose public half is in its registry entry.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError, S2SError
from s2s.jose import (
    PRIVATE_MEMBERS,
    AlgorithmRejected,
    HeaderPolicy,
    HeaderRejected,
    JoseError,
    KeyRejected,
    MissingKeyId,
    TokenLimits,
    TypeRejected,
    VerifyKey,
    algs_for_jwk,
    b64url_decode,
    check_signature,
    check_signing_use,
    load_verify_key,
    loads_object,
    normalize_alg,
    parse_compact,
    public_jwk_of,
    public_key_from_jwk,
    thumbprint,
)
from s2s.oauth import JWT_BEARER_ASSERTION_TYPE

if TYPE_CHECKING:  # clients.py imports this module: the type only, no import cycle
    from s2s.issuer.clients import Client

__all__ = [
    "JWT_BEARER_ASSERTION_TYPE",
    "AssertionVerifier",
    "InMemoryReplayCache",
    "InvalidAssertion",
    "ReplayCache",
    "assertion_subject",
    "client_public_key",
]

MAX_ASSERTION_BYTES = 8192
# Accepted header ``typ`` values ("" = no typ): what clients send today, and the explicit type of
# draft-ietf-oauth-rfc7523bis. Any other (at+jwt, dpop+jwt, logout+jwt...) is another kind of JWT,
# maybe signed by a key the client also uses elsewhere: it never passes as an assertion.
ASSERTION_TYPES = frozenset({"", "jwt", "client-authentication+jwt"})
# Any header member outside s2s.jose.NEVER_ALLOWED (senders add x5t, x5t#S256, typ...); we never
# take a key from the token and understand no critical extension.
ASSERTION_HEADER = HeaderPolicy(allowed=None, require_kid=True, types=ASSERTION_TYPES)
_LIMITS = TokenLimits(
    max_token=MAX_ASSERTION_BYTES, max_header=4096, max_payload=MAX_ASSERTION_BYTES, max_signature=1400
)


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


def assertion_subject(assertion: str) -> str:
    """The (unverified) ``iss`` of an assertion: only to find which client's keys to check it with."""
    parts = assertion.split(".")
    if len(assertion) > MAX_ASSERTION_BYTES or not assertion.isascii() or len(parts) != 3:
        raise InvalidAssertion("client assertion is not a JWT")
    try:
        claims = loads_object(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidAssertion("client assertion is not a JWT") from None
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise InvalidAssertion("client assertion has no iss")
    return iss


def client_public_key(jwk: Any) -> dict[str, Any]:
    """A registered client key, checked: public, asymmetric, for signatures, loadable, with an
    allowed algorithm. Returns its public members, its ``kid`` (the RFC 7638 thumbprint when it has
    none) and its ``alg`` if it declares one. Errors never echo the key."""
    if not isinstance(jwk, Mapping):
        raise ConfigError("each client key must be a JSON object")
    if not PRIVATE_MEMBERS.isdisjoint(jwk):
        raise ConfigError("a client JWKS must hold public keys only (found private key members)")
    kty = jwk.get("kty")
    if kty not in ("EC", "RSA", "OKP"):
        raise ConfigError(f"client key type {kty!r} is not supported (use EC, RSA or OKP)")
    try:
        check_signing_use(jwk)
    except KeyRejected as exc:
        raise ConfigError(f"client keys must be signature keys ({exc.description})") from None
    if not algs_for_jwk(jwk):
        raise ConfigError(
            f"client key ({kty}, {jwk.get('crv')}, alg {jwk.get('alg')!r}) has no allowed algorithm"
        )
    try:
        public = public_jwk_of(jwk)
        public_key_from_jwk(public)  # parses the key: a bad point, a small RSA modulus fail here
    except KeyRejected as exc:
        raise ConfigError(f"client key is not a valid public key ({exc.description})") from None
    entry: dict[str, Any] = {**public, "kid": str(jwk.get("kid") or thumbprint(public))}
    if "alg" in jwk:
        entry["alg"] = jwk["alg"]
    return entry


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
        # (client id, the JWK as JSON) -> (the algorithms it may verify, the keys loaded so far).
        self._keys: dict[tuple[str, str], tuple[frozenset[str], dict[str, VerifyKey]]] = {}
        self._lock = threading.Lock()

    def _key(self, client: Client, kid: str, alg: str) -> VerifyKey:
        for jwk in client.jwks:
            if jwk["kid"] != kid:
                continue
            # The cache key includes the key itself, so a re-registered kid cannot hit a stale entry.
            cache_key = (client.client_id, json.dumps(jwk, sort_keys=True))
            hit = self._keys.get(cache_key)
            if hit is None:
                hit = (frozenset(normalize_alg(a) for a in algs_for_jwk(jwk)), {})
                with self._lock:
                    if len(self._keys) > 10_000:
                        self._keys.clear()
                    self._keys[cache_key] = hit
            allowed, loaded = hit
            if alg not in allowed:
                raise InvalidAssertion("client assertion algorithm is not allowed for its key")
            key = loaded.get(alg)
            if key is None:
                try:
                    key = loaded[alg] = load_verify_key(jwk, alg, kid)
                except JoseError:
                    raise InvalidAssertion("client key is not usable") from None
            return key
        raise InvalidAssertion("client assertion kid is not one of the client's registered keys")

    def verify(self, assertion: str, client: Client) -> dict[str, Any]:
        """The verified claims, or :class:`InvalidAssertion` (descriptions never quote the token)."""
        if not client.jwks:
            raise InvalidAssertion("client is not registered for private_key_jwt")
        try:
            parsed = parse_compact(assertion, limits=_LIMITS, policy=ASSERTION_HEADER)
        except MissingKeyId:
            raise InvalidAssertion("client assertion has no kid") from None
        except TypeRejected:
            raise InvalidAssertion("client assertion typ names another kind of JWT") from None
        except HeaderRejected:
            raise InvalidAssertion("client assertion header uses a refused member") from None
        except AlgorithmRejected:
            raise InvalidAssertion("client assertion algorithm is not allowed for its key") from None
        except JoseError:
            raise InvalidAssertion("client assertion is not a compact JWS") from None
        if parsed.kid is None:  # the policy requires it; kept explicit for the type
            raise InvalidAssertion("client assertion has no kid")
        try:
            ASSERTION_HEADER.check_typ(parsed.typ)
        except TypeRejected:
            raise InvalidAssertion("client assertion typ names another kind of JWT") from None
        key = self._key(client, parsed.kid, parsed.alg)
        try:
            check_signature(parsed, key)
            claims = loads_object(parsed.payload)
        except JoseError:
            raise InvalidAssertion("client assertion signature is invalid") from None
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidAssertion("client assertion payload is not a JSON object") from None
        return self._check_claims(claims, client)

    def _check_claims(self, claims: dict[str, Any], client: Client) -> dict[str, Any]:
        now = self._clock.now()
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise InvalidAssertion("client assertion iss and sub must both be the client id")
        aud = claims.get("aud")
        # Our issuer identifier or token endpoint, ALONE: an assertion that also names another
        # server could be replayed there or here (the audience-injection attack behind
        # draft-ietf-oauth-rfc7523bis). A one-element array is the same as the string.
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]
        if not isinstance(aud, str) or aud not in self._audiences:
            raise InvalidAssertion("client assertion aud must be this issuer or its token endpoint, alone")
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
