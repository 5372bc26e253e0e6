"""JOSE errors: what the JOSE core refuses, before any caller gives it a meaning.

::

    S2SError                      (s2s.errors)
     └── JoseError                something about a JWS or a JWK is not acceptable
          ├── KeyRejected         a JWK or PEM was not loaded (wrong type, size, curve, members...)
          ├── MalformedJWS        not a compact JWS we read: size, segments, base64url, JSON
          ├── HeaderRejected      a header member the policy forbids
          │    ├── MissingKeyId   no kid (or not a non-empty string) where one is required
          │    └── TypeRejected   a typ the policy does not accept
          ├── AlgorithmRejected   an alg outside the table, or not the key's pinned alg
          └── SignatureInvalid    the signature does not verify

Descriptions are short and fixed ("malformed token header", "unsupported algorithm", ...): they
never quote the token, a header value or key material. Callers give these errors their own
meaning (the verifier turns them into its typed :class:`~s2s.verify.InvalidToken` refusals with
the same description, the issuer into ``invalid_client``).
"""

from __future__ import annotations

from s2s.errors import S2SError

__all__ = [
    "AlgorithmRejected",
    "HeaderRejected",
    "JoseError",
    "KeyRejected",
    "MalformedJWS",
    "MissingKeyId",
    "SignatureInvalid",
    "TypeRejected",
]


class JoseError(S2SError):
    """A JWS or JWK was not accepted."""

    error = "invalid_jose"


class KeyRejected(JoseError):
    """A key was not loaded; the reason is short and never contains key material."""

    error = "key_rejected"


class MalformedJWS(JoseError):
    """Not a compact JWS this core reads."""

    error = "malformed_jws"


class HeaderRejected(JoseError):
    """The protected header breaks the header policy."""

    error = "header_rejected"


class MissingKeyId(HeaderRejected):
    """The header has no usable ``kid`` where the policy requires one."""

    error = "missing_kid"


class TypeRejected(HeaderRejected):
    """The ``typ`` header is not one the policy accepts."""

    error = "type_rejected"


class AlgorithmRejected(JoseError):
    """The ``alg`` is unknown, not allowed, or not the algorithm of the key."""

    error = "algorithm_rejected"


class SignatureInvalid(JoseError):
    """The signature does not verify."""

    error = "signature_invalid"
