"""Verification errors. Each carries its RFC 6750 ``error`` code and the HTTP status to answer with.

Descriptions say what is wrong in a few words; they never contain the token or any of its parts.
"""

from __future__ import annotations

from s2s.errors import S2SError

__all__ = ["InsufficientScope", "InvalidRequest", "InvalidToken", "MissingToken", "VerificationError"]


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


class InsufficientScope(VerificationError):
    """The token is valid but lacks what the route requires."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, description: str = "", *, scope: str = "") -> None:
        super().__init__(description)
        # The space-separated scopes the route needs, for the WWW-Authenticate challenge.
        self.scope = scope
