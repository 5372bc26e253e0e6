"""``S2SAuthPlugin``: one line makes every route of a Litestar app require a verified bearer token.

    app = Litestar(route_handlers=[...], plugins=[S2SAuthPlugin(VerifierConfig.from_env(),
                                                                  exclude=["/health"])])

It installs :class:`S2SAuthMiddleware`, provides ``principal: PrincipalDep`` to handlers by
dependency injection (and as ``request.user``), answers :class:`VerificationError` from guards per
RFC 6750, documents the bearer scheme (and, with ``token_url=``, an OAuth2 client-credentials flow)
in OpenAPI with a requirement on each protected operation, runs the verifier in the app's lifespan
(JWKS prefetched at startup, the HTTP client it created closed at shutdown), and adds
``litestar s2s config|keys|token`` to the Litestar CLI.

Only Litestar's public API: ``on_app_init``, a middleware, an exception handler, a dependency
provider, ``receive_route`` and the public attributes of routes and handlers (``opt``,
``path_format``, ``security``, ``resolve_guards()``).

Route options (``opt``, set as keyword arguments of the route decorator):

* ``exclude_from_auth=True``: no authentication;
* ``optional_auth=True``: a request without credentials passes with ``principal`` None (inject it
  as ``principal: OptionalPrincipalDep``); a token, when sent, must be valid;
* ``requires=requires_scopes(...)`` (or a list): requirements the middleware checks right after
  verification, without Litestar's per-guard cost. ``guards=[requires_scopes(...)]`` works too.

WebSockets are authenticated from the ``Authorization`` header of the handshake, like HTTP, or,
with ``websocket_protocol_token=True``, from ``Sec-WebSocket-Protocol: s2s.bearer, <token>`` (what
a browser can send); a refusal closes with 4401 (unauthenticated), 4403 (forbidden), 4400
(malformed request) or 1013 (keys unavailable, try again later). Tokens in the query string are
refused (they end up in access logs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, cast

import click
import httpx
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import NamedDependency, Provide
from litestar.enums import ScopeType
from litestar.exceptions import WebSocketException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, SecurityRequirement, SecurityScheme
from litestar.params import SkipValidation
from litestar.plugins import CLIPlugin, InitPlugin, ReceiveRoutePlugin
from litestar.routes import ASGIRoute, BaseRoute, HTTPRoute, WebSocketRoute
from litestar.types import Scope

from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.litestar._challenge import WS_UNAUTHENTICATED, exception_handler
from s2s.litestar._cli import s2s_cli_group
from s2s.litestar._guards import Requirement
from s2s.litestar._middleware import S2SAuthMiddleware, Verifier, current_principal
from s2s.verify import TokenVerifier, VerifierConfig
from s2s.verify._principal import Principal
from s2s.verify.errors import MissingToken, VerificationError

__all__ = ["OptionalPrincipalDep", "PrincipalDep", "S2SAuthPlugin", "provide_principal"]

# The handler parameter type: ``async def handler(principal: PrincipalDep)``. Litestar 2.23+ wants
# name-injected dependencies marked. SkipValidation: the middleware made the value, so Litestar's
# signature model need not convert it again on every request.
PrincipalDep: TypeAlias = NamedDependency[SkipValidation[Principal]]
# On a route with ``optional_auth=True``: None when the request carried no credentials.
OptionalPrincipalDep: TypeAlias = NamedDependency[SkipValidation[Principal | None]]


def _unauthenticated(scope: Scope) -> Exception:
    if scope["type"] == ScopeType.WEBSOCKET:
        return WebSocketException(detail="this route requires a bearer token", code=WS_UNAUTHENTICATED)
    return MissingToken("this route requires a bearer token")


def provide_principal(scope: Scope) -> Principal:
    """The verified caller, for a handler parameter ``principal: PrincipalDep``."""
    user = scope.get("user")
    if isinstance(user, Principal):
        return user
    # Only reachable on a route excluded from authentication that still asks for a principal.
    raise _unauthenticated(scope)


class S2SAuthPlugin(InitPlugin, ReceiveRoutePlugin, CLIPlugin):
    """Bearer-token authentication for a Litestar app.

    Args:
        config: a :class:`VerifierConfig`, several (one per trusted issuer), or a ready verifier.
            The plugin owns (starts and closes) only a verifier it builds itself.
        exclude: regexes of paths left unauthenticated; each must match the *whole* route path
            template (``/files/{name}``, a mount's prefix) or the whole request path (the
            application path, also for a mounted app). A request whose path has a ``.`` or
            ``..`` segment, in any spelling, is never excluded.
        exclude_opt_key: a route with this key truthy in its ``opt`` is left unauthenticated
            (Litestar's own convention: ``@get("/", exclude_from_auth=True)``).
        optional_opt_key: a route with this key truthy in its ``opt`` accepts requests without
            credentials (``principal`` None); a token, when sent, must still be valid.
        requires_opt_key: the ``opt`` key holding a route's :class:`Requirement` (or a list).
        public_schema: leave the OpenAPI schema and documentation routes unauthenticated.
        token_url: the token endpoint; documents an OAuth2 client-credentials flow in OpenAPI
            (Swagger UI's "Authorize" then fetches a token), with the scopes routes require.
        scopes: descriptions of scopes for that flow (``{"orders:read": "Read orders"}``).
        cors_preflight: let CORS preflights (``OPTIONS`` with ``Origin`` and
            ``Access-Control-Request-Method``) through unauthenticated. Off by default.
        websocket_protocol_token: accept a WebSocket's token from the offered protocols
            ``["s2s.bearer", <token>]`` (browsers cannot set headers). Off by default.
        realm: the ``realm`` of every ``WWW-Authenticate`` challenge.
        http_client: the client the built verifier fetches JWKS with (never closed by the plugin).
        clock: the clock of the built verifier.
        dependency_key: the handler parameter name under which the principal is injected.
        security_scheme_name: the OpenAPI bearer security scheme's name.
        oauth2_scheme_name: the OpenAPI OAuth2 security scheme's name (with ``token_url``).
        max_header_bytes: the largest ``Authorization`` header looked at.
    """

    def __init__(
        self,
        config: VerifierConfig | Sequence[VerifierConfig] | TokenVerifier | Verifier,
        *,
        exclude: str | Sequence[str] = (),
        exclude_opt_key: str = "exclude_from_auth",
        optional_opt_key: str = "optional_auth",
        requires_opt_key: str = "requires",
        public_schema: bool = False,
        token_url: str | None = None,
        scopes: Mapping[str, str] | None = None,
        cors_preflight: bool = False,
        websocket_protocol_token: bool = False,
        realm: str = "s2s",
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        dependency_key: str = "principal",
        security_scheme_name: str = "BearerToken",
        oauth2_scheme_name: str = "OAuth2",
        max_header_bytes: int = 8192,
    ) -> None:
        self.verifier: TokenVerifier | Verifier
        if isinstance(config, VerifierConfig | list | tuple):
            self.verifier = TokenVerifier(config, http_client=http_client, clock=clock or system_clock)
            self._owns_verifier = True
        elif callable(getattr(config, "verify", None)):
            if http_client is not None or clock is not None:
                raise ConfigError("http_client and clock apply only to a verifier the plugin builds")
            self.verifier = cast("TokenVerifier | Verifier", config)
            self._owns_verifier = False
        else:
            raise ConfigError("S2SAuthPlugin needs a VerifierConfig, a list of them, or a TokenVerifier")
        self.exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
        self.exclude_opt_key = exclude_opt_key
        self.optional_opt_key = optional_opt_key
        self.requires_opt_key = requires_opt_key
        self.public_schema = public_schema
        self.token_url = token_url
        self.realm = realm
        self.dependency_key = dependency_key
        self.security_scheme_name = security_scheme_name
        self.oauth2_scheme_name = oauth2_scheme_name
        # Filled as routes register (the schema is rendered later, from the same dict).
        self._scopes: dict[str, str] = dict(scopes or {})
        try:
            self.middleware = S2SAuthMiddleware(
                self.verifier,
                realm=realm,
                exclude=self.exclude,
                exclude_opt_key=exclude_opt_key,
                optional_opt_key=optional_opt_key,
                requires_opt_key=requires_opt_key,
                max_header_bytes=max_header_bytes,
                cors_preflight=cors_preflight,
                websocket_protocol_token=websocket_protocol_token,
            )
        except ConfigError as exc:
            raise ConfigError(f"S2SAuthPlugin: {exc}") from None

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Prefetch JWKS at startup and close the HTTP client at shutdown (owned verifier only)."""
        if not self._owns_verifier or not isinstance(self.verifier, TokenVerifier):
            yield
            return
        # start() logs fetch failures instead of raising: an IdP outage must not stop the app;
        # the first request retries the fetch.
        await self.verifier.start()
        try:
            yield
        finally:
            await self.verifier.aclose()

    def metrics_route(self, path: str = "/metrics") -> HTTPRouteHandler:
        """``Litestar([..., plugin.metrics_route()], plugins=[plugin])``: see :mod:`s2s.observe.litestar`."""
        from s2s.observe.litestar import metrics_route  # noqa: PLC0415 - prometheus_client, on use

        watch = [self.verifier] if isinstance(self.verifier, TokenVerifier) else []
        return metrics_route(path, watch=watch, exclude_opt_key=self.exclude_opt_key)

    def describe(self) -> list[dict[str, Any]]:
        """The trusted issuers, audiences, algorithms, JWKS URIs and key ids (public data only)."""
        return self.verifier.describe() if isinstance(self.verifier, TokenVerifier) else []

    def on_cli_init(self, cli: click.Group) -> None:
        """Adds ``litestar s2s config|keys|token`` (see :mod:`s2s.litestar._cli`)."""
        cli.add_command(s2s_cli_group(self.verifier))

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.insert(0, self.middleware)
        if self.dependency_key in app_config.dependencies:
            raise ConfigError(f"a dependency named {self.dependency_key!r} already exists")
        # No parameters: Litestar then skips a signature-model pass for the provider on each request.
        app_config.dependencies[self.dependency_key] = Provide(current_principal, sync_to_thread=False)
        app_config.exception_handlers.setdefault(VerificationError, exception_handler(self.realm))
        app_config.lifespan.append(self.lifespan)
        # Handlers annotated `principal: Principal` resolve even where Principal is only imported
        # for type checking.
        app_config.signature_namespace.setdefault("Principal", Principal)
        app_config.signature_namespace.setdefault("PrincipalDep", PrincipalDep)
        app_config.signature_namespace.setdefault("OptionalPrincipalDep", OptionalPrincipalDep)
        openapi = app_config.openapi_config
        if openapi is not None:
            if self.public_schema:
                router = openapi.openapi_router
                prefix = router.path if router is not None else openapi.path or "/schema"
                self.middleware.public_prefixes = (*self.middleware.public_prefixes, prefix)
            schemes = {
                self.security_scheme_name: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="An access token (RFC 9068 JWT) in the Authorization header.",
                )
            }
            if self.token_url is not None:
                flow = OAuthFlow(token_url=self.token_url, scopes=self._scopes)
                schemes[self.oauth2_scheme_name] = SecurityScheme(
                    type="oauth2",
                    description="Client credentials: the token endpoint issues the access token.",
                    flows=OAuthFlows(client_credentials=flow),
                )
            ours = Components(security_schemes=dict(schemes))
            existing = openapi.components
            components = [*existing] if isinstance(existing, list) else [existing] if existing else []
            # In place: dataclasses.replace would rerun OpenAPIConfig.__post_init__, which warns
            # about deprecated fields the user never set.
            openapi.components = [*components, ours]
        elif self.public_schema:
            raise ConfigError("public_schema=True needs an app with an openapi_config")
        return app_config

    def _check_optional(self, handler: BaseRouteHandler) -> None:
        """An optional-authentication handler must accept a missing principal (caught at startup)."""
        parameter = handler.parsed_fn_signature.parameters.get(self.dependency_key)
        if parameter is not None and not parameter.is_optional:
            raise ConfigError(
                f"{handler.handler_name}: with {self.optional_opt_key}=True the principal may be None; "
                f"annotate it `{self.dependency_key}: OptionalPrincipalDep`"
            )

    def _security(self, handler: HTTPRouteHandler, requirements: Sequence[Requirement]) -> None:
        """The operation's OpenAPI security: bearer, or OAuth2 with the scopes it needs."""
        if handler.opt.get(self.exclude_opt_key):
            return
        scoped = [r for r in requirements if r.scopes]
        for requirement in scoped:
            self._scopes.update({s: self._scopes.get(s, s) for s in requirement.scopes})
        options: list[SecurityRequirement] = [{}] if handler.opt.get(self.optional_opt_key) else []
        options.append({self.security_scheme_name: []})
        if self.token_url is not None:
            # OpenAPI: scopes in one requirement are all needed; alternatives are separate entries.
            every = [s for r in scoped if not r.any_of for s in r.scopes]
            alternatives: list[str | None] = [s for r in scoped if r.any_of for s in r.scopes] or [None]
            for alternative in alternatives:
                needed = [*every, alternative] if alternative is not None else every
                options.append({self.oauth2_scheme_name: list(dict.fromkeys(needed))})
        existing = list(handler.security or ())
        # Per-operation (not app-wide) so excluded routes show up as public in the schema.
        handler.security = [*existing, *(o for o in options if o not in existing)]

    def receive_route(self, route: BaseRoute) -> None:
        """Work out what each handler of the route needs, and document it in OpenAPI."""
        if isinstance(route, HTTPRoute):
            handlers: list[Any] = list(route.route_handlers)
        elif isinstance(route, WebSocketRoute | ASGIRoute):
            handlers = [route.route_handler]
        else:  # pragma: no cover - Litestar has no other route kind
            return
        mounted = isinstance(route, ASGIRoute) and bool(route.route_handler.is_mount)
        self.middleware.add_route([route.path_format], handlers, mounted=mounted)
        for handler in handlers:
            if handler.opt.get(self.optional_opt_key):
                self._check_optional(handler)
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            # Excluded by path: public in the schema too.
            if self.middleware.excludes_route(handler, route.path_format):
                continue
            requirements = [
                *self.middleware.requirements_of(handler),
                *(g for g in handler.resolve_guards() if isinstance(g, Requirement)),
            ]
            self._security(handler, requirements)
