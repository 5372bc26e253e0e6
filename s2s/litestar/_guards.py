"""Requirements over the verified :class:`Principal`: scopes, roles, permissions, features.

Each ``requires_*`` returns a :class:`Requirement`, which goes in either of two places:

* ``@get("/orders", requires=requires_scopes("orders:read"))`` (or a list of them): a route
  option the plugin's middleware checks right after verifying the token. The fast path: nothing
  else runs for it.
* ``@get("/orders", guards=[requires_scopes("orders:read")])``: an ordinary Litestar guard,
  composable with any other guard (Litestar copies the route handler for every guard call).

``requires_scopes`` / ``requires_roles`` / ``requires_permissions`` / ``requires_features`` need
every value listed (all of); ``requires_any_scope`` / ``requires_any_role`` need at least one.
A refusal is a 403 with ``WWW-Authenticate: Bearer error="insufficient_scope"`` (and ``scope="…"``
for scopes) over HTTP, and close code 4403 on a WebSocket. A connection without a verified
principal (a route excluded from authentication) is refused as unauthenticated: requirements fail
closed.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import WebSocketException
from litestar.handlers.base import BaseRouteHandler

from s2s.errors import ConfigError
from s2s.litestar._challenge import WS_FORBIDDEN, WS_UNAUTHENTICATED
from s2s.observe import HUB
from s2s.verify._principal import Principal
from s2s.verify.errors import InsufficientScope, MissingToken, VerificationError

__all__ = [
    "Requirement",
    "principal_of",
    "requires_any_role",
    "requires_any_scope",
    "requires_features",
    "requires_permissions",
    "requires_roles",
    "requires_scopes",
]

_Kind = Literal["scopes", "roles", "permissions", "features"]
_UNAUTHENTICATED = "this route requires a bearer token"


def _raise(connection: ASGIConnection[Any, Any, Any, Any], exc: VerificationError) -> None:
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        # Litestar closes a WebSocket on its own terms for other exceptions (code 4500).
        code = WS_UNAUTHENTICATED if isinstance(exc, MissingToken) else WS_FORBIDDEN
        raise WebSocketException(detail=exc.description, code=code) from None
    raise exc


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The verified principal of ``connection``; refuses as unauthenticated when there is none."""
    user = connection.scope.get("user")
    if isinstance(user, Principal):
        return user
    _raise(connection, MissingToken(_UNAUTHENTICATED))
    raise AssertionError("unreachable")  # pragma: no cover


def _names(name: str, values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ConfigError(f"{name}() needs at least one value")
    for value in values:
        if not isinstance(value, str) or not value or value != value.strip() or " " in value:
            raise ConfigError(f"{name}(): {value!r} is not a single name")
    return tuple(dict.fromkeys(values))


class Requirement:
    """What a route needs from the verified principal: all of, or any of, some values of one claim.

    A Litestar guard (``guards=[...]``) and a route option for the plugin (``requires=...``) at
    once; :meth:`refusal` is the check both run.
    """

    __slots__ = ("__name__", "_wanted", "any_of", "attribute", "values")

    def __init__(self, kind: _Kind, values: tuple[str, ...], *, any_of: bool = False) -> None:
        name = f"requires_any_{kind[:-1]}" if any_of else f"requires_{kind}"
        self.attribute: _Kind = kind
        self.values = _names(name, values)
        self.any_of = any_of
        self._wanted = frozenset(self.values)
        self.__name__ = f"{name}({', '.join(map(repr, self.values))})"

    def __repr__(self) -> str:
        return self.__name__

    @property
    def scopes(self) -> tuple[str, ...]:
        """The OAuth scopes this requirement names (empty unless it is about scopes)."""
        return self.values if self.attribute == "scopes" else ()

    def refusal(self, user: object) -> VerificationError | None:
        """Why ``user`` does not meet the requirement, or None when it does."""
        if not isinstance(user, Principal):
            return MissingToken(_UNAUTHENTICATED)
        held: frozenset[str] = getattr(user, self.attribute)
        # Set operations: this runs on every request of a protected route.
        if self.any_of:
            if not self._wanted.isdisjoint(held):
                return None
            missing = self.values
            what = (
                f"one of the {self.attribute}" if len(missing) > 1 else f"the required {self.attribute[:-1]}"
            )
        else:
            if self._wanted <= held:
                return None
            missing = tuple(v for v in self.values if v not in held)
            what = f"the required {self.attribute[:-1] if len(missing) == 1 else self.attribute}"
        return InsufficientScope(
            f"the token lacks {what}: {' '.join(missing)}",
            # RFC 6750 §3: the scope the resource needs. Roles and the rest are not OAuth scopes,
            # so they go in the description only.
            scope=" ".join(self.scopes),
        )

    # async although it never awaits: Litestar runs a sync guard in a worker thread (~0.1 ms).
    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        with HUB.span("s2s.guard", **{"s2s.requirement": self.__name__}) as span:
            exc = self.refusal(connection.scope.get("user"))
            span.set("s2s.decision", "allow" if exc is None else "deny")
        if exc is not None:
            _raise(connection, exc)


def requires_scopes(*scopes: str) -> Requirement:
    """Every scope listed (from ``scp`` or ``scope``) must be granted."""
    return Requirement("scopes", scopes)


def requires_any_scope(*scopes: str) -> Requirement:
    """At least one of the scopes listed must be granted."""
    return Requirement("scopes", scopes, any_of=True)


def requires_roles(*roles: str) -> Requirement:
    """Every role listed (the ``roles`` claim, e.g. Entra app roles) must be held."""
    return Requirement("roles", roles)


def requires_any_role(*roles: str) -> Requirement:
    """At least one of the roles listed must be held."""
    return Requirement("roles", roles, any_of=True)


def requires_permissions(*permissions: str) -> Requirement:
    """Every permission listed (the ``permissions`` claim, e.g. Auth0 RBAC) must be held."""
    return Requirement("permissions", permissions)


def requires_features(*features: str) -> Requirement:
    """Every feature listed (the ``features`` claim) must be enabled."""
    return Requirement("features", features)
