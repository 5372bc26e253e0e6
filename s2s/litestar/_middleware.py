"""The authentication middleware: one bearer token per request, verified before any handler runs.

A plain ASGI middleware factory (Litestar's documented middleware protocol: a callable taking the
``app`` and returning an ASGI app). What each route needs is worked out once per route handler,
from public route data only (the handler's ``opt``, the route's path template, whether it is a
mount), either when the plugin receives the route or on the route's first request. A request then
costs a dict lookup, the token check and the route's requirements, nothing else.

It answers refusals itself in plain ASGI, so what the client sees does not depend on the app's
exception handlers, and nothing the verifier raises can turn into a 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from litestar.exceptions import WebSocketException
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
    WebSocketScope,
)

from s2s.errors import ConfigError
from s2s.litestar._challenge import (
    WS_FORBIDDEN,
    WS_INVALID_REQUEST,
    WS_TRY_AGAIN_LATER,
    WS_UNAUTHENTICATED,
    asgi_error,
    safe_description,
    websocket_close_code,
)
from s2s.litestar._guards import Requirement
from s2s.litestar._paths import routed_path, walks
from s2s.verify import TokenVerifier, extract_bearer
from s2s.verify._principal import Principal
from s2s.verify.errors import InvalidRequest, InvalidToken, MissingToken, VerificationError

__all__ = [
    "WS_BEARER_PROTOCOL",
    "WS_FORBIDDEN",
    "WS_INVALID_REQUEST",
    "WS_TRY_AGAIN_LATER",
    "WS_UNAUTHENTICATED",
    "S2SAuthMiddleware",
    "Verifier",
    "compile_exclude",
    "current_principal",
    "websocket_close_code",
]

logger = logging.getLogger("s2s.litestar")

# A browser cannot set headers on a WebSocket handshake; it offers this protocol followed by the
# token: ``new WebSocket(url, ["s2s.bearer", token])``. The server echoes "s2s.bearer" (never the
# token), and the app sees the offer without the token.
WS_BEARER_PROTOCOL = "s2s.bearer"

# Plain strings: comparing with the ScopeType enum costs a Python-level __eq__ on every request.
_HTTP: str = "http"
_WEBSOCKET: str = "websocket"
_REFUSAL_CODES = frozenset({WS_INVALID_REQUEST, WS_UNAUTHENTICATED, WS_FORBIDDEN, WS_TRY_AGAIN_LATER})
_MAX_CLOSE_REASON = 120  # a close frame's reason is at most 123 bytes
_UNAUTHENTICATED = "this route requires a bearer token"

# How a route's exclusion is decided: never, always (the route itself is excluded), or by the
# concrete path of each request (a pattern naming part of a parameterised route or a mount).
_NEVER, _ALWAYS, _BY_PATH = 0, 1, 2


class _NoPrincipal:
    """The request passed unauthenticated (excluded route, preflight): asking for its principal
    is refused the way its connection type understands."""

    __slots__ = ("websocket",)

    def __init__(self, *, websocket: bool) -> None:
        self.websocket = websocket


_NONE_HTTP = _NoPrincipal(websocket=False)
_NONE_WEBSOCKET = _NoPrincipal(websocket=True)
# The principal the middleware decided on for the request being handled: the dependency provider
# reads it without taking the scope, which would cost Litestar a signature-model pass per request.
# Set around the downstream call only, and reset after it.
_PRINCIPAL: ContextVar[Principal | _NoPrincipal | None] = ContextVar("s2s_principal", default=_NONE_HTTP)


def current_principal() -> Principal | None:
    """The verified caller of the request being handled, read without dependency injection.

    What ``principal: PrincipalDep`` injects, for a handler (or any code it calls, a sync handler
    in its worker thread included) that takes no parameter for it: Litestar's dependency injection
    costs about as much per request as the plugin itself (docs/protect-api.md). None on an
    optional route called without credentials; refused as unauthenticated (401, or close code
    4401 on a WebSocket) where the middleware verified nothing, and outside any request."""
    value = _PRINCIPAL.get()
    if value is None or isinstance(value, Principal):
        return value
    if value.websocket:
        raise WebSocketException(detail=_UNAUTHENTICATED, code=WS_UNAUTHENTICATED)
    raise MissingToken(_UNAUTHENTICATED)


class Verifier(Protocol):
    async def verify(self, token: str) -> Principal: ...


def _not_cached(token: str) -> Principal | None:
    return None


def _cache_lookup(verifier: Verifier) -> Callable[[str], Principal | None]:
    """The synchronous cache lookup asked before ``verify``: a :class:`TokenVerifier`'s
    ``verify_cached``, only where its ``verify`` is TokenVerifier's own. A subclass, wrapper or
    replaced method that adds rules in ``verify`` must see every request, so it gets none."""
    if (
        isinstance(verifier, TokenVerifier)
        and type(verifier).verify is TokenVerifier.verify
        and "verify" not in vars(verifier)
    ):
        return verifier.verify_cached
    return _not_cached


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


@dataclass(frozen=True, slots=True)
class _Route:
    """What one route handler needs, worked out once."""

    # Path template (scope["path_template"]) -> _NEVER / _ALWAYS / _BY_PATH; None: `default` for all.
    modes: dict[str, int] | None
    default: int
    mounted: bool = False
    optional: bool = False
    requirements: tuple[Requirement, ...] = ()
    # Whether a request may pass unauthenticated (an exclusion or a CORS preflight to decide):
    # False for most routes, which then skip those checks.
    may_pass: bool = True


@dataclass(slots=True)
class _WebSocketGate:
    """Wraps a WebSocket's receive/send so a refusal reaches the client as a close code.

    A close sent before the handshake is accepted becomes a bare HTTP 403 on real servers (the
    client never sees the code), so for our refusal codes the gate accepts first, then closes.
    When the token came in ``Sec-WebSocket-Protocol``, the accept echoes ``s2s.bearer`` unless the
    app chose another offered protocol: a browser fails a handshake that names none.
    """

    _receive: Receive
    _send: Send
    protocol: str | None = None
    connected: bool = False
    accepted: bool = False

    async def receive(self) -> ReceiveMessage:
        message = await self._receive()
        if message["type"] == "websocket.connect":
            self.connected = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.accept":
            self.accepted = True
            if self.protocol is not None and not message.get("subprotocol"):
                message = {**message, "subprotocol": self.protocol}
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
        accept: WebSocketAcceptEvent = {
            "type": "websocket.accept",
            "subprotocol": self.protocol,
            "headers": [],
        }
        await self._send(accept)
        self.accepted = True
        return True


def _is_preflight(scope: Scope) -> bool:
    """A CORS preflight: OPTIONS with both ``Origin`` and ``Access-Control-Request-Method``."""
    if scope.get("method") != "OPTIONS":
        return False
    names = {name for name, _ in scope["headers"]}
    return b"origin" in names and b"access-control-request-method" in names


@dataclass(eq=False)
class S2SAuthMiddleware:
    """Verifies the bearer token of every HTTP request and WebSocket handshake it sees.

    On success ``scope["user"]`` is the :class:`Principal` (``request.user``) and ``scope["auth"]``
    its read-only claims (``request.auth``). A route passes through unauthenticated when its
    handler's ``opt`` has ``exclude_opt_key`` set, or an ``exclude`` pattern fully matches its
    path template or the request's path, or it is a public prefix; but never a request whose path
    has a ``.`` or ``..`` segment in any spelling. A route whose ``opt`` has ``optional_opt_key``
    set accepts requests without credentials (``user`` is None); a token, when sent, must be valid.
    The :class:`Requirement` values under ``requires_opt_key`` are checked after verification.
    """

    verifier: Verifier
    realm: str = "s2s"
    exclude: str | Sequence[str] = ()
    exclude_opt_key: str = "exclude_from_auth"
    optional_opt_key: str = "optional_auth"
    requires_opt_key: str = "requires"
    max_header_bytes: int = 8192
    cors_preflight: bool = False
    websocket_protocol_token: bool = False
    # Path prefixes left public (the OpenAPI schema when the app says so), matched on templates.
    public_prefixes: tuple[str, ...] = ()
    _routes: dict[Any, _Route] = field(default_factory=dict, init=False, repr=False)
    _templates: dict[Any, tuple[str, ...]] = field(default_factory=dict, init=False, repr=False)
    _last_bearer: tuple[bytes | None, str] = field(default=(None, ""), init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._exclude = compile_exclude(self.exclude)
        except re.error as exc:
            raise ConfigError(f"invalid exclude pattern ({exc})") from None

    # -- what each route needs ---------------------------------------------------------------------

    def _template_mode(self, template: str, *, mounted: bool) -> int:
        if any(template == p or template.startswith(p.rstrip("/") + "/") for p in self.public_prefixes):
            return _ALWAYS
        if self._exclude is None:
            return _NEVER
        if self._exclude.fullmatch(template):
            return _ALWAYS
        # A route without parameters is reached on exactly its template: nothing left to decide.
        return _BY_PATH if mounted or "{" in template else _NEVER

    def excludes_route(self, handler: Any, template: str) -> bool:
        """Whether every request to ``handler`` on ``template`` is excluded (dot segments aside)."""
        if handler.opt.get(self.exclude_opt_key):
            return True
        return self._template_mode(template, mounted=False) == _ALWAYS

    def requirements_of(self, handler: Any) -> tuple[Requirement, ...]:
        """The :class:`Requirement` values a handler's ``opt`` names (one or a list of them)."""
        value = handler.opt.get(self.requires_opt_key) if handler is not None else None
        if value is None:
            return ()
        values = (value,) if isinstance(value, Requirement) else value
        if not isinstance(values, list | tuple) or not all(isinstance(v, Requirement) for v in values):
            raise ConfigError(
                f"{self.requires_opt_key}= takes a requires_*() value or a list of them, not {value!r}"
            )
        return tuple(values)

    def _plan(self, handler: Any, templates: tuple[str, ...] | None, *, mounted: bool) -> _Route:
        if handler is None:  # not routed by Litestar: authenticate, fail closed
            return _Route(modes=None, default=_NEVER, may_pass=self.cors_preflight)
        opt = handler.opt
        modes: dict[str, int] | None = None
        if opt.get(self.exclude_opt_key):
            default = _ALWAYS
        elif templates is None:  # a route the plugin was not told about: decide on the path
            default = _NEVER if self._exclude is None else _BY_PATH
        else:
            modes = {t: self._template_mode(t, mounted=mounted) for t in templates}
            marks = set(modes.values())
            if len(marks) == 1:
                modes, default = None, marks.pop()
            else:
                # Several paths, decided apart (a mount's scope names no template: by the path).
                default = _BY_PATH
                modes = None if mounted else modes
        return _Route(
            modes=modes,
            default=default,
            mounted=mounted,
            optional=bool(opt.get(self.optional_opt_key)),
            requirements=self.requirements_of(handler),
            may_pass=self.cors_preflight or modes is not None or default != _NEVER,
        )

    def add_route(self, templates: Iterable[str], handlers: Iterable[Any], *, mounted: bool = False) -> None:
        """Work out what each handler of a route needs (called by the plugin as routes register)."""
        for handler in handlers:
            # A handler with several paths arrives once per route: keep every template.
            known = self._templates.get(handler, ())
            self._templates[handler] = every = (*known, *(t for t in templates if t not in known))
            self._routes[handler] = self._plan(handler, every, mounted=mounted)

    def _route(self, handler: Any) -> _Route:
        route = self._plan(handler, None, mounted=bool(getattr(handler, "is_mount", False)))
        if handler is not None:
            self._routes[handler] = route
        return route

    def _excluded(self, scope: Scope, route: _Route, mode: int) -> bool:
        if mode == _BY_PATH:
            path = routed_path(scope, mounted=route.mounted)
            if path is None or self._exclude is None or self._exclude.fullmatch(path) is None:
                return False
        # An excluded route is still never reached through a dot segment: the static router or
        # mounted app behind it would resolve the segment and serve something else.
        return not walks(scope)

    # -- the request path --------------------------------------------------------------------------

    def __call__(self, app: ASGIApp) -> ASGIApp:
        # Runs on every request: locals instead of attribute lookups, the authenticated path inline
        # (no extra coroutine or method call per request). A caller reusing its token (the usual
        # case) costs a header scan, one comparison and the verifier's synchronous cache lookup:
        # no coroutine, no await, before the app.
        routes = self._routes
        plan = self._route
        excluded = self._excluded
        read_token = self._token
        refuse = self._refuse
        verify = self.verifier.verify
        cached = _cache_lookup(self.verifier)
        preflight = self.cors_preflight
        set_principal = _PRINCIPAL.set
        reset_principal = _PRINCIPAL.reset

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            handler = scope.get("route_handler")
            route = routes.get(handler) or plan(handler)
            if route.may_pass:
                modes = route.modes
                mode = route.default if modes is None else modes.get(scope.get("path_template", ""), _BY_PATH)
                if (mode != _NEVER and excluded(scope, route, mode)) or (
                    preflight and scope["type"] == _HTTP and _is_preflight(scope)
                ):
                    await self._pass(scope, receive, send, app, route)
                    return
            token: str | None = None
            protocol: str | None = None
            principal: Principal | None = None
            try:
                header: bytes | None = None
                for name, value in scope["headers"]:
                    if name == b"authorization":
                        if header is not None:
                            raise InvalidRequest("more than one Authorization header")
                        header = value
                # The header last accepted (see _token): same bytes, same token.
                memo = self._last_bearer
                if (
                    header is not None
                    and header == memo[0]
                    and scope["type"] == _HTTP
                    and not scope.get("query_string")
                ):
                    token = memo[1]
                else:
                    token, protocol = read_token(scope, header)
                if token is not None:
                    principal = cached(token) or await verify(token)
                elif not route.optional:
                    raise MissingToken("no bearer token")
                scope["user"] = principal
                scope["auth"] = None if principal is None else principal.claims
            except VerificationError as exc:
                await refuse(scope, receive, send, exc, token=token, protocol=protocol)
                return
            except Exception as exc:
                # The verifier promises only VerificationError; anything else still must not be
                # a 500. Only the type is logged: a message could quote the input.
                logger.error("token verification failed unexpectedly (%s)", type(exc).__name__)
                error = InvalidToken("the token could not be verified")
                await refuse(scope, receive, send, error, token=token, protocol=protocol)
                return
            if route.requirements:
                for requirement in route.requirements:
                    if (refusal := requirement.refusal(principal)) is not None:
                        await refuse(scope, receive, send, refusal, token=token, protocol=protocol)
                        return
            reset = set_principal(principal)
            try:
                if scope["type"] == _WEBSOCKET:
                    gate = _WebSocketGate(receive, send, protocol)
                    await app(scope, gate.receive, gate.send)
                else:
                    await app(scope, receive, send)
            finally:
                reset_principal(reset)

        return middleware

    async def _pass(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp, route: _Route) -> None:
        """An unauthenticated request: no principal, and requirements refuse it (fail closed)."""
        if route.requirements:
            await self._refuse(scope, receive, send, MissingToken(_UNAUTHENTICATED))
            return
        websocket = scope["type"] == _WEBSOCKET
        reset = _PRINCIPAL.set(_NONE_WEBSOCKET if websocket else _NONE_HTTP)
        try:
            if websocket:
                # A guard on an excluded WebSocket route still refuses with a visible close code.
                gate = _WebSocketGate(receive, send)
                await app(scope, gate.receive, gate.send)
            else:
                await app(scope, receive, send)
        finally:
            _PRINCIPAL.reset(reset)

    def _token(self, scope: Scope, header: bytes | None) -> tuple[str | None, str | None]:
        """The bearer token (None when the request has no credentials at all) and the WebSocket
        protocol to echo when the token came in ``Sec-WebSocket-Protocol``; ``header`` is the one
        ``Authorization`` header, if any (the caller refused two)."""
        query_string = scope.get("query_string", b"")
        if header is None:
            offered = (
                self._protocol_token(scope)
                if self.websocket_protocol_token and scope["type"] == _WEBSOCKET
                else None
            )
            if offered is None:
                if query_string:
                    with suppress(MissingToken):  # but refuses a token in the query string
                        extract_bearer(None, query_string=query_string)
                return None, None
            token = extract_bearer(
                f"Bearer {offered}", query_string=query_string, max_header_bytes=self.max_header_bytes
            )
            return token, WS_BEARER_PROTOCOL
        if len(header) > self.max_header_bytes:
            # Checked on the raw bytes too, before anything is decoded.
            raise InvalidRequest("the Authorization header is too large")
        if (
            self.websocket_protocol_token
            and scope["type"] == _WEBSOCKET
            and WS_BEARER_PROTOCOL in cast("WebSocketScope", scope)["subprotocols"]
        ):
            raise InvalidRequest("a token both in Authorization and in Sec-WebSocket-Protocol")
        # extract_bearer is a pure function of (header, query string): a caller reusing its token
        # sends the same header, so the last accepted parse is reused (one entry, one tuple so a
        # reader never pairs one header with another's token).
        memo = self._last_bearer
        if not query_string and header == memo[0]:
            return memo[1], None
        token = extract_bearer(
            header.decode("latin-1"), query_string=query_string, max_header_bytes=self.max_header_bytes
        )
        if not query_string:
            self._last_bearer = (header, token)
        return token, None

    def _protocol_token(self, scope: Scope) -> str | None:
        """The token a browser offered as ``["s2s.bearer", token, ...]``, taken out of the scope so
        the app (and anything that logs its scope or headers) never sees it."""
        websocket = cast("WebSocketScope", scope)
        offered = list(websocket.get("subprotocols") or ())
        if WS_BEARER_PROTOCOL not in offered:
            return None
        at = offered.index(WS_BEARER_PROTOCOL)
        if offered.count(WS_BEARER_PROTOCOL) > 1 or at + 1 >= len(offered):
            raise InvalidRequest(f"{WS_BEARER_PROTOCOL} must be followed by exactly one token")
        token = offered.pop(at + 1)
        websocket["subprotocols"] = offered
        headers = [(n, v) for n, v in scope["headers"] if n != b"sec-websocket-protocol"]
        headers.append((b"sec-websocket-protocol", ", ".join(offered).encode("latin-1")))
        websocket["headers"] = headers
        return token

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exc: VerificationError,
        *,
        token: str | None = None,
        protocol: str | None = None,
    ) -> None:
        logger.debug("request refused: %s (%s)", exc.error or "missing_token", safe_description(exc, token))
        if scope["type"] == _WEBSOCKET:
            if protocol is None and self.websocket_protocol_token:
                # A refusal before the token was read still answers the protocol a browser offered.
                offered = cast("WebSocketScope", scope).get("subprotocols") or ()
                protocol = WS_BEARER_PROTOCOL if WS_BEARER_PROTOCOL in offered else None
            gate = _WebSocketGate(receive, send, protocol)
            close: WebSocketCloseEvent = {
                "type": "websocket.close",
                "code": websocket_close_code(exc),
                "reason": safe_description(exc, token),
            }
            await gate.send(close)
            return
        status, headers, body = asgi_error(exc, self.realm, token)
        start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": headers}
        end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
        await send(start)
        await send(end)
