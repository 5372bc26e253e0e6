"""An example resource service protected by :class:`s2s.litestar.S2SAuthPlugin`.

Run from the repository root::

    S2S_VERIFIER_ISSUER=http://127.0.0.1:8000 S2S_VERIFIER_AUDIENCE=orders-api \\
        uvicorn services.resource.app:app --port 8001

Settings: ``S2S_VERIFIER_*`` (see :meth:`s2s.verify.VerifierConfig.from_env`; without
``S2S_VERIFIER_JWKS_URI`` the JWKS is found by discovery) and ``S2S_RESOURCE_REALM`` /
``S2S_RESOURCE_PUBLIC_DOCS`` (see :class:`ResourceSettings`).

Routes: ``GET /health`` (public), ``GET /whoami`` (any valid token), ``GET /orders`` and
``GET /orders/{id}`` (scope ``orders:read``), ``POST /orders`` (scope ``orders:write``),
``DELETE /orders/{id}`` (role ``admin``), WebSocket ``/orders/feed`` (scope ``orders:read``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, WebSocket, delete, get, post, websocket
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig

from s2s.errors import ConfigError
from s2s.litestar import PrincipalDep, S2SAuthPlugin, requires_roles, requires_scopes
from s2s.verify import TokenVerifier, VerifierConfig
from s2s.verify.principal import Principal

__all__ = ["ResourceSettings", "app", "create_app"]  # noqa: F822 - `app` comes from __getattr__

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class ResourceSettings:
    """The example service's own settings (the verifier has its own: ``S2S_VERIFIER_*``)."""

    realm: str = "orders"
    # Serve /schema without a token (the API's shape is not secret; its data is).
    public_docs: bool = True

    @classmethod
    def from_env(
        cls, prefix: str = "S2S_RESOURCE_", environ: Mapping[str, str] | None = None
    ) -> ResourceSettings:
        env = os.environ if environ is None else environ
        options: dict[str, Any] = {}
        if (realm := env.get(prefix + "REALM")) is not None:
            options["realm"] = realm.strip() or cls.realm
        if (docs := env.get(prefix + "PUBLIC_DOCS")) is not None:
            value = docs.strip().lower()
            if value not in _TRUE | _FALSE:
                raise ConfigError(f"{prefix}PUBLIC_DOCS must be true or false")
            options["public_docs"] = value in _TRUE
        return cls(**options)


@dataclass
class _Orders:
    """In-memory orders: the point of the example is the protection, not the storage."""

    items: dict[int, dict[str, Any]] = field(
        default_factory=lambda: {1: {"id": 1, "item": "paper", "quantity": 10}}
    )

    def get(self, order_id: int) -> dict[str, Any]:
        try:
            return self.items[order_id]
        except KeyError:
            raise NotFoundException(f"no order {order_id}") from None


def create_app(
    config: VerifierConfig | TokenVerifier | None = None,
    settings: ResourceSettings | None = None,
    **plugin_options: Any,
) -> Litestar:
    """The service; ``config`` defaults to ``VerifierConfig.from_env()``."""
    settings = settings or ResourceSettings.from_env()
    orders = _Orders()

    @get("/health", exclude_from_auth=True)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @get("/whoami")
    async def whoami(principal: PrincipalDep) -> dict[str, Any]:
        return {
            "subject": principal.subject,
            "client_id": principal.client_id,
            "issuer": principal.issuer,
            "scopes": sorted(principal.scopes),
            "roles": sorted(principal.roles),
        }

    @get("/orders", guards=[requires_scopes("orders:read")])
    async def list_orders() -> list[dict[str, Any]]:
        return list(orders.items.values())

    @get("/orders/{order_id:int}", guards=[requires_scopes("orders:read")])
    async def get_order(order_id: int) -> dict[str, Any]:
        return orders.get(order_id)

    @post("/orders", guards=[requires_scopes("orders:write")])
    async def create_order(data: dict[str, Any], principal: PrincipalDep) -> dict[str, Any]:
        order_id = max(orders.items, default=0) + 1
        order = {"id": order_id, "item": str(data.get("item", "")), "quantity": data.get("quantity", 1)}
        orders.items[order_id] = {**order, "created_by": principal.subject}
        return orders.items[order_id]

    @delete("/orders/{order_id:int}", guards=[requires_roles("admin")])
    async def delete_order(order_id: int) -> None:
        orders.get(order_id)
        del orders.items[order_id]

    @websocket("/orders/feed", guards=[requires_scopes("orders:read")])
    async def order_feed(socket: WebSocket[Principal, Any, Any], principal: PrincipalDep) -> None:
        """Sends the orders, then answers each text message with the order of that id."""
        await socket.accept()
        await socket.send_json({"subject": principal.subject, "orders": list(orders.items.values())})
        async for message in socket.iter_data(mode="text"):
            try:
                await socket.send_json(orders.get(int(message)))
            except (ValueError, NotFoundException):
                await socket.send_json({"error": "no such order"})

    exclude = ["/schema(/.*)?"] if settings.public_docs else []
    plugin = S2SAuthPlugin(
        config if config is not None else VerifierConfig.from_env(),
        realm=settings.realm,
        exclude=exclude,
        **plugin_options,
    )
    return Litestar(
        route_handlers=[health, whoami, list_orders, get_order, create_order, delete_order, order_feed],
        plugins=[plugin],
        openapi_config=OpenAPIConfig(title="s2s example resource service", version="0.1.0"),
    )


_built: dict[str, Litestar] = {}


def __getattr__(name: str) -> Any:
    # `app` is built on first access (PEP 562), so importing this module for create_app() needs no
    # environment, while `uvicorn services.resource.app:app` still finds a ready app.
    if name == "app":
        if "app" not in _built:
            _built["app"] = create_app()
        return _built["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
