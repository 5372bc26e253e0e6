"""Compact JWS parsing, done by hand before any cryptography.

Every check that can be made without a key is made here, in this order: total size, ASCII, exactly
three segments, per-segment size caps (before any base64 decoding), strict base64url, a header
that is a JSON object without duplicate names, only the allowed header parameters (``alg``,
``kid``, ``typ`` and whatever a preset adds, never ``crit``, ``b64``, ``jwk``, ``jku``, ``x5u``,
``x5c``), string ``alg`` and a non-empty string ``kid``. Failures raise :class:`InvalidToken` with
a fixed, short description; nothing of the token is ever put in an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from s2s.errors import ConfigError
from s2s.verify.algorithms import VerifyKey, b64url_decode, normalize_header_alg
from s2s.verify.errors import InvalidToken

__all__ = [
    "BASE_HEADER_PARAMS",
    "FORBIDDEN_HEADER_PARAMS",
    "ParsedToken",
    "TokenLimits",
    "check_signature",
    "loads_object",
    "normalize_typ",
    "parse_compact",
]

BASE_HEADER_PARAMS = frozenset({"alg", "kid", "typ"})
# Never allowed, whatever a config says: they either carry keys or change how the JWS is processed.
FORBIDDEN_HEADER_PARAMS = frozenset({"crit", "b64", "jwk", "jku", "x5u", "x5c", "zip", "enc", "cty"})


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


class ParsedToken(NamedTuple):
    header: Mapping[str, Any]
    alg: str
    kid: str
    typ: str | None
    payload: bytes
    signing_input: bytes
    signature: bytes


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        # Two parsers could disagree on which value wins; refuse instead of choosing.
        raise ValueError("duplicate member")
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)
_JSON_WS = " \t\n\r"


def loads_object(data: bytes) -> dict[str, Any]:
    """A JSON object (no duplicate member names anywhere), or ValueError."""
    text = data.decode("utf-8").lstrip(_JSON_WS)
    # raw_decode skips the two whitespace regexes of decode(); whitespace around the value is
    # still accepted (RFC 8259), anything else after it is not.
    value, end = _DECODER.raw_decode(text)
    if end != len(text) and text[end:].strip(_JSON_WS):
        raise ValueError("extra data after the JSON value")
    if type(value) is not dict:
        raise ValueError("not a JSON object")
    return value


def normalize_typ(typ: str) -> str:
    """RFC 8725 §3.11: compare case-insensitively, ``application/`` prefix optional."""
    typ = typ.lower()
    return typ[12:] if typ.startswith("application/") else typ


_HEADER_CACHE_SIZE = 512
# A service sees few distinct headers (one per issuer key), so the parsed form of a header
# segment is kept: the segment's bytes fully determine the result, and only successes are kept.
_headers: dict[bytes, tuple[Mapping[str, Any], str, str, str | None]] = {}


def _parse_header(h64: bytes) -> tuple[Mapping[str, Any], str, str, str | None]:
    try:
        header = loads_object(b64url_decode(h64))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidToken("malformed token header") from None
    for name in header:
        if name in FORBIDDEN_HEADER_PARAMS:
            raise InvalidToken("unsupported token header")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise InvalidToken("unsupported algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("missing key id")
    typ = header.get("typ")
    if typ is not None and not isinstance(typ, str):
        raise InvalidToken("wrong token type")
    parsed = (
        MappingProxyType(header),
        normalize_header_alg(alg),
        kid,
        None if typ is None else normalize_typ(typ),
    )
    if len(_headers) >= _HEADER_CACHE_SIZE:
        _headers.clear()
    _headers[h64] = parsed
    return parsed


def parse_compact(
    token: str,
    *,
    limits: TokenLimits = DEFAULT_LIMITS,
    extra_header_params: frozenset[str] | Iterable[str] = frozenset(),
) -> ParsedToken:
    if type(token) is not str or not token:
        raise InvalidToken("malformed token")
    if len(token) > limits.max_token:
        raise InvalidToken("token too large")
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidToken("malformed token") from None
    parts = raw.split(b".")
    if len(parts) != 3:
        raise InvalidToken("malformed token")
    h64, p64, s64 = parts
    if len(h64) > limits.max_header or len(p64) > limits.max_payload or len(s64) > limits.max_signature:
        raise InvalidToken("token too large")
    if not h64 or not s64:
        raise InvalidToken("malformed token")
    cached = _headers.get(h64)
    header, alg, kid, typ = cached if cached is not None else _parse_header(h64)
    allowed = BASE_HEADER_PARAMS.union(extra_header_params) if extra_header_params else BASE_HEADER_PARAMS
    if not allowed.issuperset(header):
        raise InvalidToken("unsupported token header")
    try:
        payload = b64url_decode(p64)
        signature = b64url_decode(s64)
    except ValueError:
        raise InvalidToken("malformed token") from None
    return ParsedToken(header, alg, kid, typ, payload, raw[: len(h64) + 1 + len(p64)], signature)


def check_signature(parsed: ParsedToken, key: VerifyKey) -> None:
    """The token's alg must be the key's pinned alg, and the signature must verify."""
    if parsed.alg != key.alg:
        raise InvalidToken("algorithm mismatch")
    if not key.verify(parsed.signing_input, parsed.signature):
        raise InvalidToken("signature invalid")
