"""RFC 6750 answers: the ``WWW-Authenticate`` challenge, the JSON body and the headers of a refusal.

One builder serves the middleware (which answers in raw ASGI, before any handler exists) and the
exception handler (which answers guard failures), so both say exactly the same thing.

A :class:`VerificationError` whose ``status_code`` is 503 (no usable keys: the identity provider
is down) is *our* fault, not the caller's: it is answered ``503`` with ``Retry-After`` and no
``WWW-Authenticate`` challenge, so a well-behaved client keeps its (good) token and retries. On a
WebSocket it closes with 1013 (try again later).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from litestar import Request, Response
from litestar.status_codes import HTTP_401_UNAUTHORIZED, HTTP_503_SERVICE_UNAVAILABLE

from s2s.verify.errors import InsufficientScope, VerificationError

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "WS_FORBIDDEN",
    "WS_INVALID_REQUEST",
    "WS_TRY_AGAIN_LATER",
    "WS_UNAUTHENTICATED",
    "asgi_error",
    "error_body",
    "error_headers",
    "error_response",
    "exception_handler",
    "quote_param",
    "retry_after",
    "safe_description",
    "websocket_close_code",
    "www_authenticate",
]

# Close codes in the 4000 private range mirroring the HTTP statuses (the convention Litestar and
# graphql-ws use), so a client tells "send a token" (4401) from "this token may not" (4403).
WS_INVALID_REQUEST = 4400
WS_UNAUTHENTICATED = 4401
WS_FORBIDDEN = 4403
# RFC 6455 §7.4.1 "Try Again Later": the server cannot verify tokens right now (keys unavailable).
WS_TRY_AGAIN_LATER = 1013
# Seconds a client is told to wait when the error does not say (KeysUnavailable.retry_after).
DEFAULT_RETRY_AFTER = 5

_MAX_DESCRIPTION = 200
_GENERIC_DESCRIPTION = "the bearer token was not accepted"


def _allowed(char: str, *, space: bool) -> bool:
    # RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E; scope tokens exclude the space.
    code = ord(char)
    return (0x20 if space else 0x21) <= code <= 0x7E and char not in '"\\'


def quote_param(value: str, *, space: bool = True, limit: int = _MAX_DESCRIPTION) -> str:
    """``value`` reduced to the characters RFC 6750 allows inside a quoted challenge parameter."""
    return "".join(c for c in value if _allowed(c, space=space))[:limit]


def safe_description(exc: VerificationError, token: str | None = None) -> str:
    """The error's description, checked once more that it carries no part of the token."""
    description = quote_param(exc.description)
    if token:
        parts = [token, *(p for p in token.split(".") if len(p) >= 8)]
        if any(p in exc.description for p in parts):
            # The verifier promises never to echo the token; this keeps the promise if it slips.
            return _GENERIC_DESCRIPTION
    return description or _GENERIC_DESCRIPTION


def _scope_param(exc: VerificationError) -> str:
    if not isinstance(exc, InsufficientScope):
        return ""
    tokens = (quote_param(s, space=False) for s in exc.scope.split())
    return " ".join(t for t in tokens if t)


def www_authenticate(exc: VerificationError, realm: str, description: str) -> str:
    """The ``Bearer`` challenge for ``exc`` (RFC 6750 §3)."""
    params = [f'realm="{quote_param(realm)}"']
    if exc.error:
        # A request with no credentials gets no error code (RFC 6750 §3.1).
        params.append(f'error="{quote_param(exc.error, space=False)}"')
        params.append(f'error_description="{description}"')
        scope = _scope_param(exc)
        if scope:
            params.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(params)


def _status(exc: VerificationError) -> int:
    status = getattr(exc, "status_code", HTTP_401_UNAUTHORIZED)
    if status == HTTP_503_SERVICE_UNAVAILABLE:
        return status
    return status if isinstance(status, int) and 400 <= status < 500 else HTTP_401_UNAUTHORIZED


def _unavailable(exc: VerificationError) -> bool:
    return _status(exc) == HTTP_503_SERVICE_UNAVAILABLE


def retry_after(exc: VerificationError) -> int:
    """Whole seconds for ``Retry-After``: the error's ``retry_after`` (rounded up), else 5."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return max(1, math.ceil(value))
    return DEFAULT_RETRY_AFTER


def websocket_close_code(exc: VerificationError) -> int:
    """The close code of a WebSocket refused with ``exc``."""
    status = _status(exc)
    if status == HTTP_503_SERVICE_UNAVAILABLE:
        return WS_TRY_AGAIN_LATER
    if status == 403:
        return WS_FORBIDDEN
    if status == 400:
        return WS_INVALID_REQUEST
    return WS_UNAUTHENTICATED


def error_body(exc: VerificationError, description: str) -> dict[str, Any]:
    """The JSON body: what is wrong, never the token."""
    body: dict[str, Any] = {"status_code": _status(exc)}
    if _unavailable(exc):
        # Not the caller's fault: never an RFC 6750 code telling it to drop its token.
        body["error"] = "temporarily_unavailable"
        body["error_description"] = description
        return body
    if exc.error:
        body["error"] = exc.error
    body["error_description"] = description
    scope = _scope_param(exc)
    if scope:
        body["scope"] = scope
    return body


def error_headers(exc: VerificationError, realm: str, description: str) -> dict[str, str]:
    if _unavailable(exc):
        return {"Retry-After": str(retry_after(exc)), "Cache-Control": "no-store", "Pragma": "no-cache"}
    return {
        "WWW-Authenticate": www_authenticate(exc, realm, description),
        # RFC 6750 §5.3 and RFC 9111: an answer about credentials must not be stored by any cache.
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def asgi_error(
    exc: VerificationError, realm: str, token: str | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, raw headers and body of the refusal, for a middleware answering in plain ASGI."""
    description = safe_description(exc, token)
    body = json.dumps(error_body(exc, description), separators=(",", ":")).encode()
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in error_headers(exc, realm, description).items()
    ]
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    return _status(exc), headers, body


def error_response(exc: VerificationError, realm: str) -> Response[Mapping[str, Any]]:
    """The refusal as a Litestar response (used by the exception handler)."""
    description = safe_description(exc)
    return Response(
        content=error_body(exc, description),
        status_code=_status(exc),
        headers=error_headers(exc, realm, description),
        media_type="application/json",
    )


def exception_handler(realm: str) -> Callable[[Request[Any, Any, Any], Exception], Response[Any]]:
    """A Litestar exception handler for :class:`VerificationError` answering per RFC 6750."""

    def handle_verification_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if not isinstance(exc, VerificationError):  # pragma: no cover - registered for that type only
            raise exc
        return error_response(exc, realm)

    return handle_verification_error
