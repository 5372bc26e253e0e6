"""An example resource service protected by :class:`s2s.litestar.S2SAuthPlugin`.

Run from the repository root::

    S2S_VERIFIER_ISSUER=http://127.0.0.1:8000 S2S_VERIFIER_AUDIENCE=https://api.example.internal \\
        .venv/bin/uvicorn services.resource.app:app --port 8001

Settings: ``S2S_VERIFIER_*`` (see :meth:`s2s.verify.VerifierConfig.from_env`; without
``S2S_VERIFIER_JWKS_URI`` the JWKS is found by discovery), ``S2S_RESOURCE_*`` (see
:class:`ResourceSettings`) and, for ``GET /me/graph``, ``S2S_ENTRA_*`` (see
:meth:`s2s.entra.EntraConfig.from_env`).

``S2S_RESOURCE_PUBLIC_DOCS`` (default true) serves ``/schema`` without a token;
``S2S_RESOURCE_TOKEN_URL`` (the issuer's token endpoint) adds an OAuth2 client-credentials flow
to it, so Swagger UI's "Authorize" can fetch a token.

Routes: ``GET /health`` (public), ``GET /whoami`` (any valid token), ``GET /orders`` and
``GET /orders/{id}`` (scope ``orders:read``), ``POST /orders`` (scope ``orders:write``),
``DELETE /orders/{id}`` (role ``admin``), WebSocket ``/orders/feed`` (scope ``orders:read``), and
``GET /me/graph`` (any valid token): the caller's Microsoft Graph profile, fetched on behalf of the
caller (Entra ID on-behalf-of). That needs the caller's token to be an Entra ID token for this API
(trust Entra with ``S2S_VERIFIER_*``) and this API's registration in ``S2S_ENTRA_*``; without any
``S2S_ENTRA_*`` setting the route answers ``501`` with a JSON error saying so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from litestar import Litestar, Response, WebSocket, delete, get, post, websocket
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath, JSONBody
from litestar.plugins import PluginProtocol

from s2s._env import EnvReader
from s2s.entra import GRAPH_V1, EntraApp, EntraConfig
from s2s.errors import ConfigError
from s2s.http import secure_url
from s2s.litestar import PrincipalDep, S2SAuthPlugin, requires_roles, requires_scopes
from s2s.litestar.entra import EntraOnBehalfOf, EntraPlugin, GraphDep
from s2s.secrets import SecretSource
from s2s.verify import Principal, TokenVerifier, VerifierConfig

__all__ = ["ResourceSettings", "app", "create_app", "entra_configured"]  # noqa: F822 - `app` comes from __getattr__

ENTRA_PREFIX = "S2S_ENTRA_"
GRAPH_USER_READ = "https://graph.microsoft.com/User.Read"


@dataclass(frozen=True)
class ResourceSettings:
    """The example service's own settings (the verifier has its own: ``S2S_VERIFIER_*``)."""

    realm: str = "orders"
    # Serve /schema without a token (the API's shape is not secret; its data is).
    public_docs: bool = True
    # The issuer's token endpoint: Swagger UI's "Authorize" then fetches tokens (client credentials).
    token_url: str | None = None
    # What GET /me/graph asks Entra ID for on behalf of the caller, and where Graph lives.
    graph_scopes: tuple[str, ...] = (GRAPH_USER_READ,)
    graph_base_url: str = GRAPH_V1

    def __post_init__(self) -> None:
        if not self.graph_scopes:
            raise ConfigError("graph_scopes must name at least one scope")
        secure_url(self.graph_base_url, "graph_base_url")
        if self.token_url is not None:
            secure_url(self.token_url, "token_url")

    @classmethod
    def from_env(
        cls,
        prefix: str = "S2S_RESOURCE_",
        environ: Mapping[str, str] | None = None,
        *,
        secrets: SecretSource | None = None,
    ) -> ResourceSettings:
        """Read ``S2S_RESOURCE_*`` with the reading rules of every s2s ``from_env`` (blank is unset;
        one :class:`ConfigError` line naming every bad variable; ``aws-sm://`` values resolved)."""
        env = EnvReader(prefix, environ, secrets=secrets)
        d = cls()
        graph_base_url = env.text("GRAPH_BASE_URL")
        values: dict[str, Any] = {
            "realm": (env.text("REALM") or d.realm).strip(),
            "public_docs": env.flag("PUBLIC_DOCS", d.public_docs),
            "graph_scopes": env.strings("GRAPH_SCOPES", d.graph_scopes),
            "graph_base_url": graph_base_url.strip().rstrip("/") if graph_base_url else d.graph_base_url,
            "token_url": (env.text("TOKEN_URL") or "").strip() or None,
        }
        return env.build(cls, values)


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


def entra_configured(environ: Mapping[str, str] | None = None, prefix: str = ENTRA_PREFIX) -> bool:
    """Whether any ``S2S_ENTRA_*`` setting is given (then all that are needed must be)."""
    env = os.environ if environ is None else environ
    return any(name.startswith(prefix) and value for name, value in env.items())


def _graph_not_configured() -> HTTPRouteHandler:
    @get("/me/graph")
    async def me_graph() -> Response[dict[str, Any]]:
        # 501 rather than a missing route: the caller learns the feature exists but is switched off.
        return Response(
            {
                "status_code": 501,
                "error": "not_configured",
                "error_description": "GET /me/graph needs this service's Entra ID registration: "
                f"set {ENTRA_PREFIX}TENANT_ID, {ENTRA_PREFIX}CLIENT_ID and a credential",
            },
            status_code=501,
            headers={"Cache-Control": "no-store"},
        )

    return me_graph


def _graph_on_behalf_of_caller() -> HTTPRouteHandler:
    @get("/me/graph")
    async def me_graph(graph: GraphDep) -> dict[str, Any]:
        """The caller's Microsoft Graph profile, fetched with an on-behalf-of token."""
        return await graph.me()

    return me_graph


def create_app(
    config: VerifierConfig | TokenVerifier | None = None,
    settings: ResourceSettings | None = None,
    *,
    entra: EntraOnBehalfOf | EntraConfig | Literal[False] | None = None,
    **plugin_options: Any,
) -> Litestar:
    """The service; ``config`` defaults to ``VerifierConfig.from_env()``.

    ``entra`` enables ``GET /me/graph``: an :class:`EntraOnBehalfOf` (used as is), an
    :class:`EntraConfig`, ``None`` for ``EntraConfig.from_env()`` when any ``S2S_ENTRA_*`` setting
    is present, or ``False`` to leave the route switched off (``501``).
    """
    settings = settings or ResourceSettings.from_env()
    orders = _Orders()
    if entra is None and entra_configured():
        entra = EntraConfig.from_env(ENTRA_PREFIX)
    owned_entra_app: EntraApp | None = None
    if isinstance(entra, EntraConfig):
        owned_entra_app = EntraApp.from_config(entra)
        entra = EntraOnBehalfOf(
            owned_entra_app,
            settings.graph_scopes,
            graph_base_url=settings.graph_base_url,
            realm=settings.realm,
        )

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

    @get("/orders", requires=requires_scopes("orders:read"))
    async def list_orders() -> list[dict[str, Any]]:
        return list(orders.items.values())

    @get("/orders/{order_id:int}", requires=requires_scopes("orders:read"))
    async def get_order(order_id: FromPath[int]) -> dict[str, Any]:
        return orders.get(order_id)

    @post("/orders", requires=requires_scopes("orders:write"))
    async def create_order(data: JSONBody[dict[str, Any]], principal: PrincipalDep) -> dict[str, Any]:
        order_id = max(orders.items, default=0) + 1
        order = {"id": order_id, "item": str(data.get("item", "")), "quantity": data.get("quantity", 1)}
        orders.items[order_id] = {**order, "created_by": principal.subject}
        return orders.items[order_id]

    @delete("/orders/{order_id:int}", requires=requires_roles("admin"))
    async def delete_order(order_id: FromPath[int]) -> None:
        orders.get(order_id)
        del orders.items[order_id]

    @websocket("/orders/feed", requires=requires_scopes("orders:read"))
    async def order_feed(socket: WebSocket[Principal, Any, Any], principal: PrincipalDep) -> None:
        """Sends the orders, then answers each text message with the order of that id."""
        await socket.accept()
        await socket.send_json({"subject": principal.subject, "orders": list(orders.items.values())})
        async for message in socket.iter_data(mode="text"):
            try:
                await socket.send_json(orders.get(int(message)))
            except (ValueError, NotFoundException):
                await socket.send_json({"error": "no such order"})

    plugin_options.setdefault("public_schema", settings.public_docs)
    plugin_options.setdefault("token_url", settings.token_url)
    plugin = S2SAuthPlugin(
        config if config is not None else VerifierConfig.from_env(),
        realm=settings.realm,
        **plugin_options,
    )
    plugins: list[PluginProtocol] = [plugin]
    on_shutdown: list[Any] = []
    if isinstance(entra, EntraOnBehalfOf):
        plugins.append(EntraPlugin(entra))
        me_graph = _graph_on_behalf_of_caller()
        if owned_entra_app is not None:
            on_shutdown.append(owned_entra_app.close)
    else:
        me_graph = _graph_not_configured()
    return Litestar(
        route_handlers=[
            health,
            whoami,
            list_orders,
            get_order,
            create_order,
            delete_order,
            order_feed,
            me_graph,
        ],
        plugins=plugins,
        on_shutdown=on_shutdown,
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
