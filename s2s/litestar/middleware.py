"""The authentication middleware: one bearer token per request, verified before any handler runs.

It answers refusals itself in plain ASGI, so what the client sees does not depend on the app's
exception handlers, and nothing the verifier raises can turn into a 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
    WebSocketAcceptEvent,
    WebSocketCloseEvent,
)
from litestar.utils.path import normalize_path

from s2s.litestar.challenge import asgi_error, safe_description
from s2s.verify import extract_bearer
from s2s.verify.errors import InvalidRequest, InvalidToken, VerificationError
from s2s.verify.principal import Principal

__all__ = [
    "WS_FORBIDDEN",
    "WS_INVALID_REQUEST",
    "WS_UNAUTHENTICATED",
    "S2SAuthMiddleware",
    "Verifier",
    "compile_exclude",
    "routed_path",
    "websocket_close_code",
]

logger = logging.getLogger("s2s.litestar")

# Close codes in the 4000 private range mirroring the HTTP statuses (the convention Litestar and
# graphql-ws use), so a client tells "send a token" (4401) from "this token may not" (4403).
WS_INVALID_REQUEST = 4400
WS_UNAUTHENTICATED = 4401
WS_FORBIDDEN = 4403
_REFUSAL_CODES = frozenset({WS_INVALID_REQUEST, WS_UNAUTHENTICATED, WS_FORBIDDEN})
_AUTHENTICATED_SCOPES = frozenset({"http", "websocket"})
_MAX_CLOSE_REASON = 120  # a close frame's reason is at most 123 bytes


class Verifier(Protocol):
    async def verify(self, token: str) -> Principal: ...


def websocket_close_code(exc: VerificationError) -> int:
    status = getattr(exc, "status_code", 401)
    if status == 403:
        return WS_FORBIDDEN
    if status == 400:
        return WS_INVALID_REQUEST
    return WS_UNAUTHENTICATED


def compile_exclude(patterns: str | Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching a path when any pattern matches the *whole* path.

    Patterns are used with ``fullmatch``: ``/health`` and ``^/health$`` both exclude exactly
    ``/health``, never ``/healthz-evil`` or ``/api/health`` (a search would).
    """
    if isinstance(patterns, str):
        patterns = (patterns,)
    if not patterns:
        return None
    compiled = [re.compile(p) for p in patterns]
    return re.compile("|".join(f"(?:{p.pattern})" for p in compiled))


def routed_path(scope: Scope) -> str | None:
    """The application path the request was routed on, for matching exclusions; None if unknown.

    For a mounted ASGI app Litestar replaces ``scope["path"]`` with the part below the mount point
    (``/admin/public/x`` arrives as ``/public/x/``), so an exclusion written for ``/public/...``
    would open the mounted app. The full path is rebuilt from ``raw_path`` the way the router
    derived it (decode, drop ``root_path``, normalise); without ``raw_path`` nothing is excluded.
    """
    handler = scope.get("route_handler")
    if not getattr(handler, "is_mount", False):
        return scope["path"]
    raw = scope.get("raw_path")
    if not raw:
        return None
    path = unquote(raw.decode("latin-1").partition("?")[0])
    if root_path := scope.get("root_path", ""):
        path = path.split(root_path, maxsplit=1)[-1]
    return normalize_path(path)


class _WebSocketGate:
    """Wraps a WebSocket's receive/send so a refusal reaches the client as a close code.

    A close sent before the handshake is accepted becomes a bare HTTP 403 on real servers (the
    client never sees the code), so for our refusal codes the gate accepts first, then closes.
    """

    __slots__ = ("_receive", "_send", "accepted", "connected")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.connected = False
        self.accepted = False

    async def receive(self) -> ReceiveMessage:
        message = await self._receive()
        if message["type"] == "websocket.connect":
            self.connected = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.accept":
            self.accepted = True
        elif message["type"] == "websocket.close" and message.get("code") in _REFUSAL_CODES:
            if not self.accepted and not await self._accept():
                return
            reason = str(message.get("reason") or "").encode()[:_MAX_CLOSE_REASON].decode(errors="ignore")
            close: WebSocketCloseEvent = {
                "type": "websocket.close",
                "code": message["code"],
                "reason": reason,
            }
            message = close
        await self._send(message)

    async def _accept(self) -> bool:
        if not self.connected:
            first = await self._receive()
            if first["type"] != "websocket.connect":
                return False  # the client left before the handshake: nothing to close
            self.connected = True
        accept: WebSocketAcceptEvent = {"type": "websocket.accept", "subprotocol": None, "headers": []}
        await self._send(accept)
        self.accepted = True
        return True


class S2SAuthMiddleware(ASGIMiddleware):
    """Verifies the bearer token of every HTTP request and WebSocket handshake it sees.

    On success ``scope["user"]`` is the :class:`Principal` (``request.user``) and ``scope["auth"]``
    its read-only claims (``request.auth``). Routes whose ``opt`` has ``exclude_opt_key`` set, and
    paths fully matching ``exclude``, pass through unauthenticated.
    """

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(
        self,
        verifier: Verifier,
        *,
        realm: str = "s2s",
        exclude: str | Sequence[str] = (),
        exclude_opt_key: str = "exclude_from_auth",
        max_header_bytes: int = 8192,
    ) -> None:
        self.verifier = verifier
        self.realm = realm
        self.exclude_opt_key = self._opt_key = exclude_opt_key
        self._exclude = compile_exclude(exclude)
        self._max_header_bytes = max_header_bytes
        self._last_bearer: tuple[bytes | None, str] = (None, "")
        # Route handler -> its guards' checks, run here instead of by Litestar (see add_http_checks).
        self._http_checks: dict[Any, tuple[Callable[[Scope], None], ...]] = {}

    def add_http_checks(self, handler: Any, checks: Sequence[Callable[[Scope], None]]) -> None:
        """Run ``checks`` (in order) on every HTTP request to ``handler``, just before the route.

        Each raises its refusal, which Litestar's exception handling answers exactly as if the
        guard had raised it. The caller removes the matching guards from Litestar's list, and
        does so only where nothing else sits between this middleware and the route.
        """
        self._http_checks[handler] = tuple(checks)

    def _run_http_checks(self, scope: Scope) -> None:
        checks = self._http_checks.get(scope.get("route_handler"))
        if checks:
            for check in checks:
                check(scope)

    def __call__(self, app: ASGIApp) -> ASGIApp:
        # Replaces ASGIMiddleware's generic wrapper (path-pattern search, deprecation checks): this
        # runs on every request, and only the opt-key check is needed here (paths are matched whole
        # in handle()). A scope without a route handler is authenticated: fail closed.
        handle = self.handle
        opt_key = self._opt_key

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in _AUTHENTICATED_SCOPES:
                handler = scope.get("route_handler")
                if handler is None or not handler.opt.get(opt_key):
                    await handle(scope, receive, send, app)
                    return
                if self._http_checks and scope["type"] == ScopeType.HTTP:
                    self._run_http_checks(scope)  # excluded, yet guarded: fails closed
            await app(scope, receive, send)

        return middleware

    def _token(self, scope: Scope) -> str:
        header: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if header is not None:
                    raise InvalidRequest("more than one Authorization header")
                header = value
        if header is not None and len(header) > self._max_header_bytes:
            # Checked on the raw bytes too, before anything is decoded.
            raise InvalidRequest("the Authorization header is too large")
        query_string = scope.get("query_string", b"")
        # extract_bearer is a pure function of (header, query string): a caller reusing its token
        # sends the same header, so the last accepted parse is reused (one entry, one tuple so a
        # reader never pairs one header with another's token).
        memo = self._last_bearer
        if not query_string and header is not None and header == memo[0]:
            return memo[1]
        token = extract_bearer(
            None if header is None else header.decode("latin-1"),
            query_string=query_string,
            max_header_bytes=self._max_header_bytes,
        )
        if not query_string and header is not None:
            self._last_bearer = (header, token)
        return token

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        exclude = self._exclude
        if exclude is not None and (path := routed_path(scope)) is not None and exclude.fullmatch(path):
            if scope["type"] == ScopeType.WEBSOCKET:
                # A guard on an excluded WebSocket route still refuses with a visible close code.
                gate = _WebSocketGate(receive, send)
                await next_app(scope, gate.receive, gate.send)
            else:
                if self._http_checks:
                    self._run_http_checks(scope)
                await next_app(scope, receive, send)
            return
        token: str | None = None
        try:
            token = self._token(scope)
            principal = await self.verifier.verify(token)
        except VerificationError as exc:
            await self._refuse(scope, receive, send, exc, token)
            return
        except Exception as exc:
            # The verifier promises only VerificationError; anything else still must not be a 500.
            # Only the type is logged: a message could quote the input.
            logger.error("token verification failed unexpectedly (%s)", type(exc).__name__)
            await self._refuse(scope, receive, send, InvalidToken("the token could not be verified"), token)
            return
        scope["user"] = principal
        scope["auth"] = principal.claims
        if scope["type"] == ScopeType.WEBSOCKET:
            gate = _WebSocketGate(receive, send)
            await next_app(scope, gate.receive, gate.send)
        else:
            if self._http_checks:
                self._run_http_checks(scope)
            await next_app(scope, receive, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, exc: VerificationError, token: str | None
    ) -> None:
        logger.debug("request refused: %s (%s)", exc.error or "missing_token", safe_description(exc, token))
        if scope["type"] == ScopeType.WEBSOCKET:
            reason = safe_description(exc, token)
            gate = _WebSocketGate(receive, send)
            close: WebSocketCloseEvent = {
                "type": "websocket.close",
                "code": websocket_close_code(exc),
                "reason": reason,
            }
            await gate.send(close)
            return
        status, headers, body = asgi_error(exc, self.realm, token)
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status,
            "headers": headers,
        }
        end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
        await send(start)
        await send(end)
