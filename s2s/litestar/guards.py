"""Route guards over the verified :class:`Principal`: every listed value is required (all of).

``@get("/orders", guards=[requires_scopes("orders:read")])``. A refusal is a 403 with
``WWW-Authenticate: Bearer error="insufficient_scope"`` (and ``scope="…"`` for scopes) over HTTP,
and close code 4403 on a WebSocket. A route without a verified principal (excluded from the
authentication middleware) is refused as unauthenticated: guards fail closed.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import WebSocketException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Scope

from s2s.errors import ConfigError
from s2s.litestar.middleware import WS_FORBIDDEN, WS_UNAUTHENTICATED
from s2s.verify.errors import InsufficientScope, MissingToken, VerificationError
from s2s.verify.principal import Principal

__all__ = [
    "Guard",
    "HttpCheck",
    "http_check",
    "principal_of",
    "requires_features",
    "requires_permissions",
    "requires_roles",
    "requires_scopes",
]

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]
# The same check over an HTTP scope, raising the guard's exception: the plugin runs it in its
# middleware instead of Litestar's guard call, which copies the route handler on every call.
HttpCheck = Callable[[Scope], None]

_HTTP_CHECKS: weakref.WeakKeyDictionary[Callable[..., Any], HttpCheck] = weakref.WeakKeyDictionary()


def http_check(guard: Callable[..., Any]) -> HttpCheck | None:
    """The HTTP-scope form of a guard made by this module; None for any other guard."""
    try:
        return _HTTP_CHECKS.get(guard)
    except TypeError:  # not weak-referenceable, so not ours
        return None


def _raise(connection: ASGIConnection[Any, Any, Any, Any], exc: VerificationError, code: int) -> None:
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        # Litestar closes a WebSocket on its own terms for other exceptions (code 4500).
        raise WebSocketException(detail=exc.description, code=code) from None
    raise exc


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The verified principal of ``connection``; refuses as unauthenticated when there is none."""
    user = connection.scope.get("user")
    if isinstance(user, Principal):
        return user
    _raise(connection, MissingToken("this route requires a bearer token"), WS_UNAUTHENTICATED)
    raise AssertionError("unreachable")  # pragma: no cover


def _names(kind: str, values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ConfigError(f"requires_{kind}() needs at least one value")
    for value in values:
        if not isinstance(value, str) or not value or value != value.strip() or " " in value:
            raise ConfigError(f"requires_{kind}(): {value!r} is not a single {kind[:-1]} name")
    return tuple(dict.fromkeys(values))


def _guard(kind: str, attribute: str, values: tuple[str, ...], *, scope_param: bool) -> Guard:
    required = _names(kind, values)
    label = kind[:-1]

    def refusal(user: object) -> VerificationError | None:
        if not isinstance(user, Principal):
            return MissingToken("this route requires a bearer token")
        held: frozenset[str] = getattr(user, attribute)
        missing = [v for v in required if v not in held]
        if not missing:
            return None
        noun = label if len(missing) == 1 else kind
        return InsufficientScope(
            f"the token lacks the required {noun}: {' '.join(missing)}",
            # RFC 6750 §3: the scope the resource needs. Roles and the rest are not OAuth
            # scopes, so they go in the description only.
            scope=" ".join(required) if scope_param else "",
        )

    # async although it never awaits: Litestar runs a sync guard in a worker thread (~0.1 ms).
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        exc = refusal(connection.scope.get("user"))
        if exc is not None:
            code = WS_UNAUTHENTICATED if isinstance(exc, MissingToken) else WS_FORBIDDEN
            _raise(connection, exc, code)

    def check(scope: Scope) -> None:
        exc = refusal(scope.get("user"))
        if exc is not None:
            raise exc

    guard.__name__ = guard.__qualname__ = f"requires_{kind}({', '.join(map(repr, required))})"
    _HTTP_CHECKS[guard] = check
    return guard


def requires_scopes(*scopes: str) -> Guard:
    """Every scope listed (from ``scp`` or ``scope``) must be granted."""
    return _guard("scopes", "scopes", scopes, scope_param=True)


def requires_roles(*roles: str) -> Guard:
    """Every role listed (the ``roles`` claim, e.g. Entra app roles) must be held."""
    return _guard("roles", "roles", roles, scope_param=False)


def requires_permissions(*permissions: str) -> Guard:
    """Every permission listed (the ``permissions`` claim, e.g. Auth0 RBAC) must be held."""
    return _guard("permissions", "permissions", permissions, scope_param=False)


def requires_features(*features: str) -> Guard:
    """Every feature listed (the ``features`` claim) must be enabled."""
    return _guard("features", "features", features, scope_param=False)
