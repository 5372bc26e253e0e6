"""OAuth 2.0 vocabulary shared by the token clients and the issuer, and nothing else.

A caller-only service imports this module through :mod:`s2s.client` or :mod:`s2s.entra`; it must
never pull in server code (:mod:`s2s.issuer`), so what both sides need lives here: the identifier
and scope grammars, the jwt-bearer assertion type, the well-known paths of an s2s issuer, and the
one :class:`AccessToken` type every client returns.

Patterns are anchored with ``\\A`` and ``\\Z``: ``$`` also matches before a trailing newline, so
``"orders\\n"`` would pass a ``^...$`` check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "CLIENT_ID",
    "FORM_TYPE",
    "JWKS_PATH",
    "JWT_BEARER_ASSERTION_TYPE",
    "METADATA_PATH",
    "SCOPE_TOKEN",
    "TOKEN_PATH",
    "AccessToken",
]

# RFC 3986 unreserved characters: safe in URLs, logs and Basic credentials without escaping.
CLIENT_ID: Final = re.compile(r"\A[A-Za-z0-9._~-]{1,128}\Z")
# RFC 6749 §3.3 scope-token: printable ASCII except space, '"' and '\'.
SCOPE_TOKEN: Final = re.compile(r"\A[\x21\x23-\x5b\x5d-\x7e]{1,128}\Z")
# RFC 7523 §2.2: the client_assertion_type of private_key_jwt.
JWT_BEARER_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM_TYPE: Final = "application/x-www-form-urlencoded"

# Where an s2s issuer serves its endpoints, relative to the issuer URL.
TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 - a URL path, not a password
JWKS_PATH: Final = "/.well-known/jwks.json"
METADATA_PATH: Final = "/.well-known/oauth-authorization-server"  # RFC 8414


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and when it expires, from our issuer or from Entra ID.

    ``scopes`` are the granted scopes; ``audience`` the resource it was asked for (``None`` when
    the scopes name it, as with Entra); ``from_cache`` tells whether the token came from a cache
    rather than a fresh request. The token itself stays out of ``repr``.
    """

    token: str = field(repr=False)
    expires_at: float
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    issued_at: float = 0.0
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6750 token type, not a password
    from_cache: bool = False

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.issued_at

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        return f"{self.token_type} {self.token}"
