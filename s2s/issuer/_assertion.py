"""RFC 7523 ``private_key_jwt`` client authentication.

The client signs a short-lived JWT (iss = sub = its client id, aud = our token endpoint or
issuer, a unique ``jti``) with a private key whose public half is in its registry entry.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError, S2SError
from s2s.issuer._certs import ClientCertificate, leaf_certificate
from s2s.jose import (
    PRIVATE_MEMBERS,
    AlgorithmRejected,
    HeaderPolicy,
    HeaderRejected,
    JoseError,
    KeyRejected,
    ParsedJWS,
    TokenLimits,
    TypeRejected,
    VerifyKey,
    algs_for_jwk,
    b64url_decode,
    check_signature,
    check_signing_use,
    encode_header,
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
    from s2s.issuer._clients import Client

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
# take a key from the token and understand no critical extension. `kid` is optional (RFC 7523 §3):
# Authlib sends {"alg": "RS256"} only, MSAL names its certificate by thumbprint instead.
ASSERTION_HEADER = HeaderPolicy(allowed=None, require_kid=False, types=ASSERTION_TYPES)
# Without kid or thumbprint, at most this many registered keys of the algorithm are tried.
MAX_KIDLESS_KEYS = 4
# The longest assertion lifetime accepted by default: Authlib mints exp = iat + 3600, MSAL iat + 600.
# The replay state keeps each jti until its exp, so a longer lifetime costs state, not safety.
DEFAULT_MAX_LIFETIME = 3600.0
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
    if "x5c" in jwk:
        # A registered certificate (`s2s clients add --cert`): assertions may name it by thumbprint.
        try:
            cert = leaf_certificate(jwk["x5c"])
        except ValueError as exc:
            raise ConfigError(f"client key x5c is not a certificate ({exc})") from None
        if not cert.holds(public):
            raise ConfigError("client key x5c: the certificate does not hold this key")
        entry["x5c"] = [base64.b64encode(cert.der).decode("ascii")]
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


@dataclass(slots=True)
class _Registered:
    """A registered client key as the verifier uses it."""

    jwk: Mapping[str, Any]
    algs: frozenset[str]
    cert: ClientCertificate | None
    loaded: dict[str, VerifyKey]


def _parse_checked(assertion: str) -> ParsedJWS:
    try:
        parsed = parse_compact(assertion, limits=_LIMITS, policy=ASSERTION_HEADER)
        ASSERTION_HEADER.check_typ(parsed.typ)
        return parsed
    except TypeRejected:
        raise InvalidAssertion("client assertion typ names another kind of JWT") from None
    except HeaderRejected:
        raise InvalidAssertion("client assertion header uses a refused member") from None
    except AlgorithmRejected:
        raise InvalidAssertion("client assertion algorithm is not allowed for its key") from None
    except JoseError:
        raise InvalidAssertion("client assertion is not a compact JWS") from None


def _parse(assertion: str) -> tuple[ParsedJWS, Any]:
    """The parsed assertion and its ``x5c`` member (None when absent).

    MSAL may send its certificate in ``x5c``, a member the JOSE core refuses everywhere because it
    could carry a key. Here it is lifted out of the header, the rest goes through the same checks
    as any assertion, and the certificate is only ever compared with the registered key."""
    if len(assertion) > MAX_ASSERTION_BYTES or assertion.count(".") != 2:
        raise InvalidAssertion("client assertion is not a compact JWS")
    h64, p64, s64 = assertion.split(".")
    try:
        header = loads_object(b64url_decode(h64))
    except (ValueError, UnicodeDecodeError, RecursionError, JoseError):
        raise InvalidAssertion("client assertion is not a compact JWS") from None
    if "x5c" not in header:
        return _parse_checked(assertion), None
    rest = {k: v for k, v in header.items() if k != "x5c"}
    parsed = _parse_checked(f"{encode_header(rest)}.{p64}.{s64}")
    # The signature covers the header as sent.
    return parsed._replace(header=header, signing_input=f"{h64}.{p64}".encode("ascii")), header["x5c"]


class AssertionVerifier:
    """Checks ``private_key_jwt`` assertions for one issuer."""

    def __init__(
        self,
        audiences: Iterable[str],
        replay: ReplayCache,
        *,
        clock: Clock = system_clock,
        max_lifetime: float = DEFAULT_MAX_LIFETIME,
        leeway: float = 30,
    ) -> None:
        self._audiences = frozenset(audiences)
        self._replay = replay
        self._clock = clock
        self._max_lifetime = max_lifetime
        self._leeway = leeway
        # (client id, the JWK as JSON) -> the key's algorithms, certificate and keys loaded so far.
        self._keys: dict[tuple[str, str], _Registered] = {}
        self._lock = threading.Lock()

    def _registered(self, client: Client, jwk: Mapping[str, Any]) -> _Registered:
        # The cache key includes the key itself, so a re-registered kid cannot hit a stale entry.
        cache_key = (client.client_id, json.dumps(jwk, sort_keys=True))
        hit = self._keys.get(cache_key)
        if hit is None:
            cert = None
            if "x5c" in jwk:  # checked at registration (client_public_key): it holds this key
                try:
                    cert = leaf_certificate(jwk["x5c"])
                except ValueError:
                    raise InvalidAssertion("client key is not usable") from None
            hit = _Registered(jwk, frozenset(normalize_alg(a) for a in algs_for_jwk(jwk)), cert, {})
            with self._lock:
                if len(self._keys) > 10_000:
                    self._keys.clear()
                self._keys[cache_key] = hit
        return hit

    def _candidates(self, client: Client, parsed: ParsedJWS) -> list[_Registered]:
        """The registered keys that may have signed: by ``kid``; else by certificate thumbprint
        (``x5t#S256``/``x5t``); else every key of the algorithm, at most :data:`MAX_KIDLESS_KEYS`."""
        s256, sha1 = parsed.header.get("x5t#S256"), parsed.header.get("x5t")
        if not all(v is None or (isinstance(v, str) and 0 < len(v) <= 64) for v in (s256, sha1)):
            raise InvalidAssertion("client assertion certificate thumbprint is malformed")
        keys = [self._registered(client, jwk) for jwk in client.jwks]
        if parsed.kid is not None:
            chosen = [k for k in keys if k.jwk["kid"] == parsed.kid]
            if not chosen:
                raise InvalidAssertion("client assertion kid is not one of the client's registered keys")
            # Thumbprints sent with a kid must name that key's certificate, when it has one.
            if (s256 is not None or sha1 is not None) and any(
                k.cert is not None and not k.cert.names(s256, sha1) for k in chosen
            ):
                raise InvalidAssertion("client assertion thumbprint does not match the key its kid names")
        elif s256 is not None or sha1 is not None:
            chosen = [k for k in keys if k.cert is not None and k.cert.names(s256, sha1)]
            if not chosen:
                raise InvalidAssertion(
                    "client assertion thumbprint names none of the client's registered certificates"
                )
        else:
            chosen = [k for k in keys if parsed.alg in k.algs]
            if not chosen:
                raise InvalidAssertion("client assertion algorithm is not allowed for its key")
            if len(chosen) > MAX_KIDLESS_KEYS:
                raise InvalidAssertion(
                    f"client assertion has no kid and the client has more than {MAX_KIDLESS_KEYS} keys "
                    "for its algorithm: send kid"
                )
        usable = [k for k in chosen if parsed.alg in k.algs]
        if not usable:
            raise InvalidAssertion("client assertion algorithm is not allowed for its key")
        return usable

    @staticmethod
    def _verify_key(registered: _Registered, alg: str) -> VerifyKey:
        key = registered.loaded.get(alg)
        if key is None:
            try:
                key = registered.loaded[alg] = load_verify_key(registered.jwk, alg, registered.jwk["kid"])
            except JoseError:
                raise InvalidAssertion("client key is not usable") from None
        return key

    def verify(self, assertion: str, client: Client) -> dict[str, Any]:
        """The verified claims, or :class:`InvalidAssertion` (descriptions never quote the token)."""
        if not client.jwks:
            raise InvalidAssertion("client is not registered for private_key_jwt")
        parsed, x5c = _parse(assertion)
        signer: _Registered | None = None
        for candidate in self._candidates(client, parsed):
            try:
                check_signature(parsed, self._verify_key(candidate, parsed.alg))
            except JoseError:
                continue
            signer = candidate
            break
        if signer is None:
            raise InvalidAssertion("client assertion signature is invalid")
        now = self._clock.now()
        cert = signer.cert
        if cert is not None and now < cert.not_before - self._leeway:
            raise InvalidAssertion("the client's certificate is not valid yet")
        if cert is not None and now > cert.not_after + self._leeway:
            raise InvalidAssertion("the client's certificate has expired")
        if x5c is not None:
            # Never a key source: it must hold the key that verified the signature.
            try:
                sent = leaf_certificate(x5c)
            except ValueError:
                raise InvalidAssertion("client assertion x5c is malformed") from None
            if not sent.holds(signer.jwk):
                raise InvalidAssertion("client assertion x5c does not hold the client's registered key")
        try:
            claims = loads_object(parsed.payload)
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
