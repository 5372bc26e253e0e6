"""The issuer's errors: what the token endpoint answers, and what its infrastructure raises.

Infrastructure (client registries, the replay and rate-limit state, the signer) raises its own
errors and knows nothing of OAuth; only the token endpoint (:mod:`s2s.issuer._token`) turns them
into RFC 6749 §5.2 answers::

    S2SError
    ├── OAuthError                  400 invalid_request   a refused token request (RFC 6749 §5.2)
    │   ├── InvalidTokenRequest     400 invalid_request   malformed request
    │   ├── InvalidClient           401 invalid_client    client authentication failed
    │   ├── InvalidGrant            400 invalid_grant
    │   ├── UnsupportedGrantType    400 unsupported_grant_type
    │   ├── InvalidScope            400 invalid_scope
    │   ├── InvalidTarget           400 invalid_target    audience / resource (RFC 8707)
    │   ├── SlowDown                429 slow_down         + Retry-After
    │   ├── TemporarilyUnavailable  503 temporarily_unavailable  + Retry-After
    │   └── ServerError             500 server_error      anything unexpected (details in the log)
    ├── RegistryError               the client registry could not be read or written
    │   └── RegistryUnavailable     not loaded yet            -> 503 temporarily_unavailable
    └── StateUnavailable            replay / rate state unreachable -> 503 temporarily_unavailable

Mapped by the endpoint as well, from other packages: :class:`s2s.keys._kms.SigningUnavailable`
(-> 503, the detail only in the log) and :class:`s2s.issuer._assertion.InvalidAssertion`
(-> 401 ``invalid_client``). A client record that breaks the rules is a
:class:`s2s.errors.ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from s2s.errors import S2SError

__all__ = [
    "InvalidClient",
    "InvalidGrant",
    "InvalidScope",
    "InvalidTarget",
    "InvalidTokenRequest",
    "OAuthError",
    "RegistryError",
    "RegistryUnavailable",
    "ServerError",
    "SlowDown",
    "StateUnavailable",
    "TemporarilyUnavailable",
    "UnsupportedGrantType",
]


class OAuthError(S2SError):
    """The token request was refused (RFC 6749 §5.2)."""

    error = "invalid_request"
    status_code = 400

    def __init__(self, description: str = "", *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.headers = dict(headers or {})

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


class InvalidTokenRequest(OAuthError):
    """The request is malformed."""

    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed."""

    error = "invalid_client"
    status_code = 401

    def __init__(self, description: str = "client authentication failed", *, realm: str = "s2s") -> None:
        super().__init__(description, headers={"WWW-Authenticate": f'Basic realm="{realm}", charset="UTF-8"'})


class InvalidGrant(OAuthError):
    """The grant is invalid."""

    error = "invalid_grant"


class UnsupportedGrantType(OAuthError):
    """Only client_credentials is supported."""

    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    """The requested scope is invalid or not allowed for this client."""

    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """The requested audience or resource is invalid or not allowed for this client (RFC 8707)."""

    error = "invalid_target"


class SlowDown(OAuthError):
    """Too many token requests for this client."""

    error = "slow_down"
    status_code = 429

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"rate limit exceeded; retry in {seconds}s", headers={"Retry-After": str(seconds)})


class TemporarilyUnavailable(OAuthError):
    """No signing key is loaded yet."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str = "no signing key is loaded yet") -> None:
        super().__init__(description, headers={"Retry-After": "5"})


class ServerError(OAuthError):
    """The issuer failed; the details are in its log, not in the response."""

    error = "server_error"
    status_code = 500

    def __init__(self) -> None:
        super().__init__("internal error")


class RegistryError(S2SError):
    """The client registry could not be read or written."""

    error = "client_registry_error"


class RegistryUnavailable(RegistryError):
    """The client registry is not loaded yet (its store cannot be read now)."""

    error = "client_registry_unavailable"

    def __init__(self, description: str = "the client registry is not loaded yet") -> None:
        super().__init__(description)


class StateUnavailable(S2SError):
    """The shared state store could not be reached: refuse rather than skip the check."""

    error = "state_unavailable"

    def __init__(self, description: str = "shared state is temporarily unavailable") -> None:
        super().__init__(description)
