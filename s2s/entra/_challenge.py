"""Claims challenges: the ``WWW-Authenticate`` header that asks a client to step up.

Format as Microsoft documents it (learn.microsoft.com/entra/identity-platform/claims-challenge)::

    Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize",
        error="insufficient_claims", claims="<base64 of the claims JSON>"
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["DEFAULT_AUTHORIZATION_URI", "claims_challenge_header", "parse_claims_challenge"]

DEFAULT_AUTHORIZATION_URI = "https://login.microsoftonline.com/common/oauth2/authorize"
_CLAIMS = re.compile(r'claims="([A-Za-z0-9+/=_\-]*)"')
_ERROR = re.compile(r'error="([^"]*)"')


def _quoted(value: str) -> str:
    # Quoted-string per RFC 9110: no way for a value to close the quote or start a new header.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


def claims_challenge_header(
    claims: str,
    *,
    authorization_uri: str = DEFAULT_AUTHORIZATION_URI,
    realm: str = "",
    error: str = "insufficient_claims",
) -> str:
    """The ``WWW-Authenticate`` value carrying ``claims`` (the JSON string MSAL/Entra returned)."""
    encoded = base64.b64encode(claims.encode("utf-8")).decode("ascii")
    return (
        f'Bearer realm="{_quoted(realm)}", authorization_uri="{_quoted(authorization_uri)}", '
        f'error="{_quoted(error)}", claims="{encoded}"'
    )


def parse_claims_challenge(www_authenticate: str | None) -> str | None:
    """The decoded claims JSON of an ``insufficient_claims`` challenge, or ``None``."""
    if not www_authenticate:
        return None
    error = _ERROR.search(www_authenticate)
    match = _CLAIMS.search(www_authenticate)
    if match is None or (error is not None and error.group(1) != "insufficient_claims"):
        return None
    encoded = match.group(1).replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
