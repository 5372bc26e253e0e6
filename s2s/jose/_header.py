"""The one header policy: which protected-header members a JWS may carry, and which ``typ``.

:data:`NEVER_ALLOWED` is the single deny-list every reader of a JWS in s2s shares (the verifier,
the client-assertion check): members that carry keys (``jwk``, ``jku``, ``x5u``, ``x5c``), change
how the JWS is processed (``crit``, ``b64``, ``zip``), belong to JWE (``enc``) or announce nested
content we do not process (``cty``). No policy can allow them.

A :class:`HeaderPolicy` adds what one use allows on top: a closed set of members
(``allowed``; the verifier: ``alg``, ``kid``, ``typ`` and what a provider preset adds) or any
member outside the deny-list (``allowed=None``; client assertions, whose senders add ``x5t`` and
friends), whether ``kid`` is required, and the ``typ`` values accepted or refused, compared after
RFC 8725 §3.11 normalisation (lower case, ``application/`` dropped; ``""`` means "no typ").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from s2s.errors import ConfigError
from s2s.jose.errors import HeaderRejected, MissingKeyId, TypeRejected

__all__ = ["BASE_HEADER_PARAMS", "NEVER_ALLOWED", "HeaderPolicy", "loads_object", "normalize_typ"]

BASE_HEADER_PARAMS = frozenset({"alg", "kid", "typ"})
NEVER_ALLOWED = frozenset({"crit", "b64", "jwk", "jku", "x5u", "x5c", "zip", "enc", "cty"})


def normalize_typ(typ: str) -> str:
    """RFC 8725 §3.11: compare case-insensitively, ``application/`` prefix optional."""
    typ = typ.lower()
    return typ[12:] if typ.startswith("application/") else typ


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        # Two parsers could disagree on which value wins; refuse instead of choosing.
        raise ValueError("duplicate member")
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)
# The decoder's C scanner, called directly: what JSONDecoder.raw_decode does, one Python frame
# less per token (it raises StopIteration for no value at all: turned into a ValueError below).
_scan: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_JSON_WS = " \t\n\r"


def loads_object(data: bytes) -> dict[str, Any]:
    """A JSON object (no duplicate member names anywhere), or ValueError."""
    text = data.decode("utf-8").lstrip(_JSON_WS)
    # Scanning from the first value skips the two whitespace regexes of decode(); whitespace
    # around the value is still accepted (RFC 8259), anything else after it is not.
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("no JSON value") from None
    if end != len(text) and text[end:].strip(_JSON_WS):
        raise ValueError("extra data after the JSON value")
    if type(value) is not dict:
        raise ValueError("not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class HeaderPolicy:
    """What one reader of JWSs accepts in a protected header (beyond :data:`NEVER_ALLOWED`)."""

    # The members allowed; None: any member outside NEVER_ALLOWED.
    allowed: frozenset[str] | None = BASE_HEADER_PARAMS
    require_kid: bool = True
    # Normalised typ values accepted ("" = no typ header); None: any typ not in refused_types.
    types: frozenset[str] | None = None
    refused_types: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.allowed is not None:
            allowed = frozenset(self.allowed) | {"alg"}
            if NEVER_ALLOWED & allowed:
                raise ConfigError(f"{', '.join(sorted(NEVER_ALLOWED))} are never allowed in a JWS header")
            object.__setattr__(self, "allowed", allowed)
        if self.types is not None:
            object.__setattr__(self, "types", frozenset(normalize_typ(t) for t in self.types))
        object.__setattr__(self, "refused_types", frozenset(normalize_typ(t) for t in self.refused_types))

    @classmethod
    def closed(cls, extra: Iterable[str] = (), **options: Any) -> HeaderPolicy:
        """``alg``, ``kid``, ``typ`` and ``extra`` only."""
        return cls(allowed=BASE_HEADER_PARAMS.union(extra), **options)

    def check_members(self, header: Mapping[str, Any]) -> None:
        """The members :func:`~s2s.jose.parse_compact` did not already check against this policy."""
        allowed = self.allowed
        if allowed is not None and not allowed.issuperset(header):
            raise HeaderRejected("unsupported token header")
        if self.require_kid and "kid" not in header:
            raise MissingKeyId("missing key id")

    def check_typ(self, typ: str | None) -> None:
        """``typ`` as :func:`~s2s.jose.parse_compact` returns it (normalised, or None)."""
        value = typ or ""
        if (self.types is not None and value not in self.types) or value in self.refused_types:
            raise TypeRejected("wrong token type")
