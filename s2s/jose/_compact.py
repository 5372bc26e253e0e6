"""Compact JWS: parse (every check that needs no key, before any cryptography), serialize, verify.

:func:`parse_compact` checks, in this order: total size, ASCII, exactly three segments, per-segment
size caps (before any base64 decoding), strict base64url, a header that is a JSON object without
duplicate names, no member of :data:`~s2s.jose.NEVER_ALLOWED`, a string ``alg``, a non-empty string
``kid`` when present (and present when the policy requires it), a string ``typ``, and only the
members the :class:`~s2s.jose.HeaderPolicy` allows. Failures raise :mod:`s2s.jose.errors` types
with a fixed, short description; nothing of the token is ever put in an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from s2s.errors import ConfigError
from s2s.jose._algorithms import normalize_alg
from s2s.jose._b64 import b64url_decode, b64url_encode
from s2s.jose._header import NEVER_ALLOWED, HeaderPolicy, loads_object, normalize_typ
from s2s.jose._keys import SignFunction, VerifyKey
from s2s.jose.errors import (
    AlgorithmRejected,
    HeaderRejected,
    MalformedJWS,
    MissingKeyId,
    SignatureInvalid,
    TypeRejected,
)

__all__ = [
    "DEFAULT_LIMITS",
    "ParsedJWS",
    "TokenLimits",
    "check_signature",
    "encode_claims",
    "encode_header",
    "parse_compact",
    "serialize_compact",
]


@dataclass(frozen=True, slots=True)
class TokenLimits:
    """Size caps, in characters of the base64url segments, checked before any decoding."""

    max_token: int = 16_384
    max_header: int = 1_024
    max_payload: int = 12_288
    # 8192-bit RSA signatures are 1366 characters.
    max_signature: int = 1_400

    def __post_init__(self) -> None:
        if min(self.max_token, self.max_header, self.max_payload, self.max_signature) <= 0:
            raise ConfigError("token size limits must be positive")


DEFAULT_LIMITS = TokenLimits()
_DEFAULT_POLICY = HeaderPolicy()


class ParsedJWS(NamedTuple):
    header: Mapping[str, Any]
    alg: str  # the table's name (EdDSA read as Ed25519)
    kid: str | None
    typ: str | None  # normalised (RFC 8725 §3.11)
    payload: bytes
    signing_input: bytes
    signature: bytes


_new_parsed = tuple.__new__
_HEADER_CACHE_SIZE = 512
# A service sees few distinct headers (one per issuer key), so the parsed form of a header segment
# is kept: the segment's bytes fully determine the result (no policy is involved in it), and only
# successes are kept. Each entry also names the last policy that accepted the header (policies are
# immutable: its verdict on these bytes stands), so that a verifier's own tokens skip that check.
_Header = tuple[Mapping[str, Any], str, str | None, str | None, "HeaderPolicy | None"]
_headers: dict[bytes, _Header] = {}


def _parse_header(h64: bytes) -> _Header:
    try:
        header = loads_object(b64url_decode(h64))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedJWS("malformed token header") from None
    for name in header:
        if name in NEVER_ALLOWED:
            raise HeaderRejected("unsupported token header")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise AlgorithmRejected("unsupported algorithm")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise MissingKeyId("missing key id")
    typ = header.get("typ")
    if typ is not None and not isinstance(typ, str):
        raise TypeRejected("wrong token type")
    parsed: _Header = (
        MappingProxyType(header),
        normalize_alg(alg),
        kid,
        None if typ is None else normalize_typ(typ),
        None,
    )
    if len(_headers) >= _HEADER_CACHE_SIZE:
        _headers.clear()
    _headers[h64] = parsed
    return parsed


def parse_compact(
    token: str, *, limits: TokenLimits = DEFAULT_LIMITS, policy: HeaderPolicy = _DEFAULT_POLICY
) -> ParsedJWS:
    if type(token) is not str or not token:
        raise MalformedJWS("malformed token")
    if len(token) > limits.max_token:
        raise MalformedJWS("token too large")
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedJWS("malformed token") from None
    parts = raw.split(b".")
    if len(parts) != 3:
        raise MalformedJWS("malformed token")
    h64, p64, s64 = parts
    if len(h64) > limits.max_header or len(p64) > limits.max_payload or len(s64) > limits.max_signature:
        raise MalformedJWS("token too large")
    if not h64 or not s64:
        raise MalformedJWS("malformed token")
    cached = _headers.get(h64)
    header, alg, kid, typ, accepted_by = cached if cached is not None else _parse_header(h64)
    if accepted_by is not policy:
        if kid is None and policy.require_kid:
            raise MissingKeyId("missing key id")
        allowed = policy.allowed
        if allowed is not None and not allowed.issuperset(header):
            raise HeaderRejected("unsupported token header")
        _headers[h64] = (header, alg, kid, typ, policy)
    try:
        payload = b64url_decode(p64)
        signature = b64url_decode(s64)
    except ValueError:
        raise MalformedJWS("malformed token") from None
    # tuple.__new__ directly: the NamedTuple constructor is one more Python frame per token.
    return _new_parsed(ParsedJWS, (header, alg, kid, typ, payload, raw[: len(h64) + 1 + len(p64)], signature))


def check_signature(parsed: ParsedJWS, key: VerifyKey) -> None:
    """The JWS's alg must be the key's pinned alg, and the signature must verify."""
    if parsed.alg != key.alg:
        raise AlgorithmRejected("algorithm mismatch")
    if not key.verify(parsed.signing_input, parsed.signature):
        raise SignatureInvalid("signature invalid")


# One encoder each: json.dumps with non-default options builds a new encoder per call.
_HEADER_JSON = json.JSONEncoder(separators=(",", ":"))
_CLAIMS_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_header(header: Mapping[str, Any]) -> str:
    """The base64url protected header (compact JSON, ASCII)."""
    return b64url_encode(_HEADER_JSON.encode(header).encode("ascii"))


def encode_claims(claims: Mapping[str, Any]) -> str:
    """The base64url JWT claims (compact JSON, UTF-8)."""
    return b64url_encode(_CLAIMS_JSON.encode(claims).encode())


def serialize_compact(header: Mapping[str, Any], claims: Mapping[str, Any], sign: SignFunction) -> str:
    """``header.claims.signature``; ``header`` must already carry ``alg`` (and ``kid``)."""
    signing_input = f"{encode_header(header)}.{encode_claims(claims)}"
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode('ascii')))}"
