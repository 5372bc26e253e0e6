"""The one place that reads a bearer token out of a request (RFC 6750 §2.1).

Callers pass the Authorization header as received; when a request carries the header more than
once, pass the values joined with ``", "`` (the HTTP field-combining rule), which is refused here as
"several credentials". Tokens in the query string (RFC 6750 §2.3) are refused, never read.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from s2s.verify.errors import InvalidRequest, MalformedToken, MissingToken

__all__ = ["extract_bearer"]

_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _query_has_token(query_string: bytes | str) -> bool:
    raw = query_string.encode("latin-1") if isinstance(query_string, str) else query_string
    if b"access_token" not in raw and b"%" not in raw:
        return False
    for part in re.split(rb"[&;]", raw):
        name = part.split(b"=", 1)[0]
        if unquote_to_bytes(name.replace(b"+", b" ")).strip() == b"access_token":
            return True
    return False


def extract_bearer(
    authorization: str | None, *, query_string: bytes | str = b"", max_header_bytes: int = 8192
) -> str:
    if query_string and _query_has_token(query_string):
        raise InvalidRequest("token in query string is not accepted")
    if authorization is None or not authorization.strip():
        raise MissingToken("no bearer token")
    if len(authorization) > max_header_bytes:
        raise InvalidRequest("authorization header too large")
    if "," in authorization:
        raise InvalidRequest("several credentials")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken("no bearer token")
    credentials = credentials.strip(" ")
    if not credentials:
        raise InvalidRequest("empty bearer credentials")
    if " " in credentials or "\t" in credentials:
        raise InvalidRequest("several credentials")
    if not _TOKEN68.fullmatch(credentials):
        raise MalformedToken()
    return credentials
