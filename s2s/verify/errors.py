"""Verification errors. Each carries its RFC 6750 ``error`` code and the HTTP status to answer with.

::

    S2SError                          (s2s.errors)
     ├── VerificationError            401 invalid_token: the request's credentials were not accepted
     │    ├── MissingToken            401, no error code (RFC 6750 §3.1)
     │    ├── InvalidRequest          400 invalid_request: several credentials, token in the query...
     │    ├── InvalidToken            401 invalid_token: the token itself is refused
     │    │    ├── MalformedToken         not a compact JWS, bad base64url/JSON, too large, no kid
     │    │    ├── UnsupportedHeader      a header member that is never or not allowed
     │    │    ├── DisallowedAlgorithm    alg unsupported, or not the alg of the key
     │    │    ├── WrongTokenType         typ (or the claims of another token kind)
     │    │    ├── UntrustedIssuer        iss not configured, tenant not allowed
     │    │    ├── UnknownKey             kid not in the issuer's JWKS
     │    │    ├── BadSignature           the signature does not verify
     │    │    ├── ExpiredToken           exp passed (leeway included)
     │    │    ├── TokenNotYetValid       nbf or iat in the future
     │    │    ├── TokenTooOld            older than max_token_age
     │    │    ├── InvalidAudience        aud (or the audience claim) not ours
     │    │    ├── MissingClaim           a required claim is absent
     │    │    ├── InvalidClaim           a claim of the wrong type or value, a failed assertion
     │    │    └── TokenRevoked           the revocation hook said so
     │    ├── InsufficientScope       403 insufficient_scope: valid token, not enough for the route
     │    └── KeysUnavailable         503: no usable keys, because the issuer or its JWKS host fails
     └── JWKSError                    a JWKS or discovery fetch failed (logged, never answered)

Every :class:`InvalidToken` subclass answers exactly as :class:`InvalidToken` does (401,
``invalid_token``, the same short description as before the types existed): the types are for
tests, logs and metrics, not for the caller. :class:`KeysUnavailable` is our fault, not the
caller's: answer 503 with ``Retry-After: retry_after`` and no ``WWW-Authenticate`` error code.
Descriptions say what is wrong in a few words; they never contain the token or any of its parts.
"""

from __future__ import annotations

from s2s.errors import S2SError

__all__ = [
    "BadSignature",
    "DisallowedAlgorithm",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidRequest",
    "InvalidToken",
    "JWKSError",
    "KeysUnavailable",
    "MalformedToken",
    "MissingClaim",
    "MissingToken",
    "TokenNotYetValid",
    "TokenRevoked",
    "TokenTooOld",
    "UnknownKey",
    "UnsupportedHeader",
    "UntrustedIssuer",
    "VerificationError",
    "WrongTokenType",
]


class VerificationError(S2SError):
    """The request's credentials were not accepted."""

    error = "invalid_token"
    status_code = 401


class MissingToken(VerificationError):
    """No bearer token was sent (RFC 6750 §3.1: the challenge carries no error code)."""

    error = ""
    status_code = 401


class InvalidRequest(VerificationError):
    """The request is malformed: several credentials, a token in the query string, an oversized header."""

    error = "invalid_request"
    status_code = 400


class InvalidToken(VerificationError):
    """The token is malformed, expired, revoked, or signed by a key we do not trust."""

    error = "invalid_token"
    status_code = 401


class MalformedToken(InvalidToken):
    """malformed token"""


class UnsupportedHeader(InvalidToken):
    """unsupported token header"""


class DisallowedAlgorithm(InvalidToken):
    """unsupported algorithm"""


class WrongTokenType(InvalidToken):
    """wrong token type"""


class UntrustedIssuer(InvalidToken):
    """untrusted issuer"""


class UnknownKey(InvalidToken):
    """unknown key"""


class BadSignature(InvalidToken):
    """signature invalid"""


class ExpiredToken(InvalidToken):
    """token expired"""


class TokenNotYetValid(InvalidToken):
    """token not yet valid"""


class TokenTooOld(InvalidToken):
    """token too old"""


class InvalidAudience(InvalidToken):
    """invalid audience"""


class MissingClaim(InvalidToken):
    """missing required claim"""


class InvalidClaim(InvalidToken):
    """invalid claim"""


class TokenRevoked(InvalidToken):
    """token revoked"""


class InsufficientScope(VerificationError):
    """The token is valid but lacks what the route requires."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, description: str = "", *, scope: str = "") -> None:
        super().__init__(description)
        # The space-separated scopes the route needs, for the WWW-Authenticate challenge.
        self.scope = scope


class KeysUnavailable(VerificationError):
    """No usable signing keys: the issuer's JWKS (or discovery) could not be fetched."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str = "", *, retry_after: int = 5) -> None:
        super().__init__(description or "signing keys unavailable")
        # Whole seconds until the next fetch may be tried (for the Retry-After header).
        self.retry_after = max(1, int(retry_after))


class JWKSError(S2SError):
    """A JWKS or discovery fetch failed; the message is short, names no token and is safe to log."""

    error = "jwks_error"
