"""Litestar: call Microsoft Graph (or any API) as the verified caller, through Entra on-behalf-of.

    obo = EntraOnBehalfOf(EntraApp.from_config(EntraConfig.from_env()),
                          scopes=["https://graph.microsoft.com/User.Read"])
    app = Litestar([me_graph], plugins=[S2SAuthPlugin(config), EntraPlugin(obo)])

    @get("/me/graph")
    async def me_graph(graph: GraphDep) -> dict[str, Any]:
        return await graph.me()

The dependencies run only after :class:`~s2s.litestar.S2SAuthPlugin` authenticated the request
(``request.user`` is a :class:`~s2s.verify.Principal`); then the raw token is read from the
``Authorization`` header with :func:`s2s.verify.extract_bearer` and exchanged. Entra and Graph
failures become answers a client can act on: a claims challenge becomes ``401`` with
``WWW-Authenticate: Bearer ... error="insufficient_claims", claims="..."``; throttling becomes
``503`` with ``Retry-After``; anything else upstream is a ``502`` that names no internal detail.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import httpx
from litestar import Request, Response
from litestar.config.app import AppConfig
from litestar.di import NamedDependency, Provide
from litestar.plugins import InitPlugin

from s2s.entra._app import EntraApp
from s2s.entra._graph import GRAPH_V1, GraphClient
from s2s.entra.errors import (
    EntraError,
    EntraInteractionRequired,
    EntraInvalidGrant,
    EntraThrottled,
    EntraUnavailable,
    GraphError,
    GraphForbidden,
    GraphNotFound,
    GraphThrottled,
    GraphUnauthorized,
)
from s2s.errors import ConfigError
from s2s.litestar._challenge import error_response
from s2s.oauth import AccessToken
from s2s.verify import extract_bearer
from s2s.verify._principal import Principal
from s2s.verify.errors import InvalidToken, MissingToken

__all__ = ["EntraOnBehalfOf", "EntraPlugin", "GraphDep", "OboTokenDep"]

log = logging.getLogger(__name__)

# Handler parameter types, as with ``PrincipalDep``: ``async def h(graph: GraphDep)``. Litestar 2.23+
# wants dependencies marked explicitly (inferred ones stop working in 3.0).
GraphDep: TypeAlias = NamedDependency[GraphClient]
OboTokenDep: TypeAlias = NamedDependency[AccessToken]

ExceptionHandler = Callable[[Request[Any, Any, Any], Exception], Response[Any]]
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _json(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> Response[Any]:
    return Response(
        content={"status_code": status, "error": error, "error_description": description},
        status_code=status,
        headers={**_NO_STORE, **(headers or {})},
        media_type="application/json",
    )


def _retry_after(seconds: float | None) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))} if seconds is not None else {}


class EntraOnBehalfOf:
    """Per-request OBO tokens and Graph clients for the caller the verifier plugin accepted.

    Args:
        app: the :class:`EntraApp` (this API's own registration in Entra ID).
        scopes: the downstream scopes, e.g. ``["https://graph.microsoft.com/User.Read"]``.
        graph_base_url: Graph's base URL (national clouds, a test double).
        graph_http_client: an ``httpx.AsyncClient`` for Graph calls (left open); otherwise one is
            made on first use with ``graph_transport`` / ``graph_verify`` and closed by :meth:`aclose`.
        token_key / graph_key: the handler parameter names of the two dependencies.
        realm: the ``realm`` of the challenges this answers with.
    """

    def __init__(
        self,
        app: EntraApp,
        scopes: str | Sequence[str],
        *,
        graph_base_url: str = GRAPH_V1,
        graph_http_client: httpx.AsyncClient | None = None,
        graph_transport: httpx.AsyncBaseTransport | None = None,
        graph_verify: Any = True,
        token_key: str = "obo_token",  # noqa: S107 - a parameter name, not a secret
        graph_key: str = "graph",
        realm: str = "s2s",
    ) -> None:
        self.app = app
        self.scopes = (scopes,) if isinstance(scopes, str) else tuple(scopes)
        if not self.scopes:
            raise ConfigError("EntraOnBehalfOf needs the downstream scopes")
        self.graph_base_url = graph_base_url
        self.token_key = token_key
        self.graph_key = graph_key
        self.realm = realm
        self._http = graph_http_client
        self._own_http = graph_http_client is None
        self._transport = graph_transport
        self._verify = graph_verify

    async def token(self, request: Request[Any, Any, Any]) -> AccessToken:
        """The OBO token for this request's verified caller."""
        if not isinstance(request.scope.get("user"), Principal):
            # Never exchange a token the verifier has not accepted (an excluded route, no plugin).
            raise MissingToken("this route requires a bearer token")
        user_token = extract_bearer(
            request.headers.get("authorization"), query_string=request.scope.get("query_string", b"")
        )
        return await self.app.on_behalf_of(user_token, self.scopes)

    async def graph(self, request: Request[Any, Any, Any]) -> GraphClient:
        """A :class:`GraphClient` calling Graph as this request's verified caller."""
        token = await self.token(request)
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, verify=self._verify, timeout=10.0)
        return GraphClient(token.token, base_url=self.graph_base_url, http_client=self._http)

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def dependencies(self) -> dict[str, Provide]:
        """``{token_key: Provide(...), graph_key: Provide(...)}`` for ``Litestar(dependencies=...)``."""

        async def provide_obo_token(request: Request[Any, Any, Any]) -> AccessToken:
            return await self.token(request)

        async def provide_graph(request: Request[Any, Any, Any]) -> GraphClient:
            return await self.graph(request)

        return {
            self.token_key: Provide(provide_obo_token),
            self.graph_key: Provide(provide_graph),
        }

    def exception_handlers(self) -> dict[type[Exception], ExceptionHandler]:
        return {EntraError: self.handle_entra_error, GraphError: self.handle_graph_error}

    def handle_entra_error(self, request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if isinstance(exc, EntraInteractionRequired) and exc.claims:
            return self._step_up(exc.claims, "the identity provider requires the user to step up")
        if isinstance(exc, EntraInvalidGrant):
            return error_response(
                InvalidToken("the token cannot be used on behalf of the caller"), self.realm
            )
        # Internal detail (our credentials, Entra's texts) goes to the log, not to the caller.
        code = getattr(exc, "error", "entra_error")
        log.warning("Entra ID on-behalf-of failed: %s (%s)", code, getattr(exc, "correlation_id", None))
        if isinstance(exc, EntraThrottled):
            headers = _retry_after(exc.retry_after)
            return _json(503, "temporarily_unavailable", "the identity provider is throttling", headers)
        if isinstance(exc, EntraUnavailable):
            return _json(503, "temporarily_unavailable", "the identity provider is unavailable")
        return _json(502, "upstream_error", "the identity provider refused this service's request")

    def handle_graph_error(self, request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if isinstance(exc, GraphUnauthorized) and exc.claims:
            return self._step_up(exc.claims, "Microsoft Graph requires the user to step up")
        log.warning("Microsoft Graph call failed: %s", getattr(exc, "code", None) or type(exc).__name__)
        if isinstance(exc, GraphForbidden):
            return _json(403, "insufficient_scope", "Microsoft Graph refused the call for this user")
        if isinstance(exc, GraphNotFound):
            return _json(404, "not_found", "Microsoft Graph has no such resource")
        if isinstance(exc, GraphThrottled):
            return _json(
                503, "temporarily_unavailable", "Microsoft Graph is throttling", _retry_after(exc.retry_after)
            )
        return _json(502, "upstream_error", "Microsoft Graph failed")

    def _step_up(self, claims: str, description: str) -> Response[Any]:
        return _json(
            401, "insufficient_claims", description, {"WWW-Authenticate": self.app.challenge_header(claims)}
        )


class EntraPlugin(InitPlugin):
    """Registers an :class:`EntraOnBehalfOf`'s dependencies and error handlers, and closes it."""

    def __init__(self, obo: EntraOnBehalfOf) -> None:
        self.obo = obo

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        for key, provider in self.obo.dependencies().items():
            if key in app_config.dependencies:
                raise ConfigError(f"a dependency named {key!r} already exists")
            app_config.dependencies[key] = provider
        for exc_type, handler in self.obo.exception_handlers().items():
            app_config.exception_handlers.setdefault(exc_type, handler)
        app_config.on_shutdown.append(self.obo.aclose)
        app_config.signature_namespace.setdefault("GraphClient", GraphClient)
        app_config.signature_namespace.setdefault("AccessToken", AccessToken)
        app_config.signature_namespace.setdefault("GraphDep", GraphDep)
        app_config.signature_namespace.setdefault("OboTokenDep", OboTokenDep)
        return app_config
