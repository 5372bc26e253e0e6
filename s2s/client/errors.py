"""Errors of the token client. Messages never carry a secret, an assertion or a token::

    S2SError
    └── TokenClientError              a token could not be obtained
        ├── TokenRequestError         the endpoint refused (RFC 6749 §5.2 ``error``, ``status_code``)
        ├── TokenEndpointUnreachable  no answer: connection, timeout, broken response
        ├── InvalidTokenResponse      200, but not a usable bearer token response
        ├── DiscoveryError            the issuer's metadata names no usable token endpoint
        └── AssertionUnavailable      an assertion source has no assertion to give (file missing
            │                         or empty, variable unset, callable failed)
            └── AssertionExpired      the assertion it holds has expired (names where and when)

Bad arguments and settings are :class:`s2s.errors.ConfigError`; an ``aws-sm://`` secret that cannot
be read is a :class:`s2s.secrets.SecretError`.
"""

from __future__ import annotations

from s2s.errors import S2SError

__all__ = [
    "AssertionExpired",
    "AssertionUnavailable",
    "DiscoveryError",
    "InvalidTokenResponse",
    "TokenClientError",
    "TokenEndpointUnreachable",
    "TokenRequestError",
]


class TokenClientError(S2SError):
    """A token could not be obtained."""

    error = "token_client_error"


class TokenRequestError(TokenClientError):
    """The token endpoint refused the request with an RFC 6749 §5.2 error.

    ``error`` is the server's code (``invalid_client``, ``invalid_scope``, ``invalid_target``,
    ``slow_down``, ...), ``status_code`` the HTTP status, ``retry_after`` the seconds the server
    asked to wait (429/503), if any.
    """

    def __init__(
        self, error: str, description: str, *, status_code: int, retry_after: float | None = None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed (429 and 5xx)."""
        return self.status_code == 429 or self.status_code >= 500


class TokenEndpointUnreachable(TokenClientError):
    """The token endpoint could not be reached (connection refused, timeout, broken response)."""

    error = "temporarily_unavailable"


class InvalidTokenResponse(TokenClientError):
    """The token endpoint answered 200 with something that is not a usable bearer token response."""

    error = "invalid_token_response"


class DiscoveryError(TokenClientError):
    """The issuer's metadata (RFC 8414) could not be read or does not name a token endpoint."""

    error = "discovery_failed"


class AssertionUnavailable(TokenClientError):
    """An assertion source (:mod:`s2s.client`'s ``*AssertionSource``) has no assertion to give.

    The message names the source (a file path, a variable name, a callable's name), never content.
    """

    error = "assertion_unavailable"


class AssertionExpired(AssertionUnavailable):
    """The assertion a source holds has expired: whatever refreshes it (the kubelet, a sidecar, a
    CI runner) has stopped. ``where`` names the source, ``expired_at`` is the ``exp`` (Unix time)."""

    error = "assertion_expired"

    def __init__(self, description: str, *, where: str, expired_at: float) -> None:
        super().__init__(description)
        self.where = where
        self.expired_at = expired_at
