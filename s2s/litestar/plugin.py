"""``S2SAuthPlugin``: one line makes every route of a Litestar app require a verified bearer token.

    app = Litestar(route_handlers=[...], plugins=[S2SAuthPlugin(VerifierConfig.from_env(),
                                                                  exclude=["/health"])])

It installs :class:`S2SAuthMiddleware`, provides ``principal: PrincipalDep`` to handlers by
dependency injection (and as ``request.user``), answers :class:`VerificationError` from guards per
RFC 6750, documents the bearer scheme in OpenAPI (with a requirement on each protected operation),
runs the verifier in the app's lifespan (JWKS prefetched at startup, the HTTP client it created
closed at shutdown), and adds ``litestar s2s config|keys|token`` to the Litestar CLI.

WebSockets are authenticated from the ``Authorization`` header of the handshake, like HTTP, and a
refusal closes with 4401 (unauthenticated), 4403 (forbidden) or 4400 (malformed request). Tokens in
the query string are refused (they end up in access logs), and a token in
``Sec-WebSocket-Protocol`` (the usual browser workaround) is not accepted: this plugin is for
service-to-service callers, which can set headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, cast

import click
import httpx
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import NamedDependency, Provide
from litestar.enums import ScopeType
from litestar.exceptions import WebSocketException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import CLIPlugin, InitPlugin, ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.types import Scope

from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.litestar.challenge import exception_handler
from s2s.litestar.cli import s2s_cli_group
from s2s.litestar.guards import http_check
from s2s.litestar.middleware import WS_UNAUTHENTICATED, S2SAuthMiddleware, Verifier, compile_exclude
from s2s.verify import TokenVerifier, VerifierConfig
from s2s.verify.errors import MissingToken, VerificationError
from s2s.verify.principal import Principal

__all__ = ["PrincipalDep", "S2SAuthPlugin", "provide_principal"]

# The handler parameter type: ``async def handler(principal: PrincipalDep)``. Litestar 2.23+ wants
# name-injected dependencies marked; a bare ``principal: Principal`` still works but warns.
PrincipalDep: TypeAlias = NamedDependency[Principal]


def provide_principal(scope: Scope) -> Principal:
    """The verified caller, for a handler parameter ``principal: PrincipalDep``."""
    user = scope.get("user")
    if isinstance(user, Principal):
        return user
    # Only reachable on a route excluded from authentication that still asks for a principal.
    if scope["type"] == ScopeType.WEBSOCKET:
        raise WebSocketException(detail="this route requires a bearer token", code=WS_UNAUTHENTICATED)
    raise MissingToken("this route requires a bearer token")


class S2SAuthPlugin(InitPlugin, ReceiveRoutePlugin, CLIPlugin):
    """Bearer-token authentication for a Litestar app.

    Args:
        config: a :class:`VerifierConfig`, several (one per trusted issuer), or a ready verifier.
            The plugin owns (starts and closes) only a verifier it builds itself.
        exclude: regexes of paths left unauthenticated; each must match the *whole* path (the
            application path, also for requests to a mounted ASGI app).
        exclude_opt_key: a route with this key truthy in its ``opt`` is left unauthenticated
            (Litestar's own convention: ``@get("/", exclude_from_auth=True)``).
        realm: the ``realm`` of every ``WWW-Authenticate`` challenge.
        http_client: the client the built verifier fetches JWKS with (never closed by the plugin).
        clock: the clock of the built verifier.
        dependency_key: the handler parameter name under which the principal is injected.
        security_scheme_name: the OpenAPI security scheme's name.
        max_header_bytes: the largest ``Authorization`` header looked at.
    """

    def __init__(
        self,
        config: VerifierConfig | Sequence[VerifierConfig] | TokenVerifier | Verifier,
        *,
        exclude: str | Sequence[str] = (),
        exclude_opt_key: str = "exclude_from_auth",
        realm: str = "s2s",
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        dependency_key: str = "principal",
        security_scheme_name: str = "BearerToken",
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
        try:
            self._exclude = compile_exclude(self.exclude)
        except Exception as exc:
            raise ConfigError(f"S2SAuthPlugin: invalid exclude pattern ({exc})") from None
        self.exclude_opt_key = exclude_opt_key
        self.realm = realm
        self.dependency_key = dependency_key
        self.security_scheme_name = security_scheme_name
        self._auth: S2SAuthMiddleware = S2SAuthMiddleware(
            self.verifier,
            realm=realm,
            exclude=self.exclude,
            exclude_opt_key=exclude_opt_key,
            max_header_bytes=max_header_bytes,
        )
        self.middleware = self._auth

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

    def describe(self) -> list[dict[str, Any]]:
        """The trusted issuers, audiences, algorithms, JWKS URIs and key ids (public data only)."""
        return self.verifier.describe() if isinstance(self.verifier, TokenVerifier) else []

    def on_cli_init(self, cli: click.Group) -> None:
        """Adds ``litestar s2s config|keys|token`` (see :mod:`s2s.litestar.cli`)."""
        cli.add_command(s2s_cli_group(self.verifier))

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.insert(0, self.middleware)
        if self.dependency_key in app_config.dependencies:
            raise ConfigError(f"a dependency named {self.dependency_key!r} already exists")
        app_config.dependencies[self.dependency_key] = Provide(provide_principal, sync_to_thread=False)
        app_config.exception_handlers.setdefault(VerificationError, exception_handler(self.realm))
        app_config.lifespan.append(self.lifespan)
        # Handlers annotated `principal: Principal` resolve even where Principal is only imported
        # for type checking.
        app_config.signature_namespace.setdefault("Principal", Principal)
        app_config.signature_namespace.setdefault("PrincipalDep", PrincipalDep)
        if app_config.openapi_config is not None:
            scheme = SecurityScheme(
                type="http",
                scheme="bearer",
                bearer_format="JWT",
                description="An access token (RFC 9068 JWT) in the Authorization header.",
            )
            ours = Components(security_schemes={self.security_scheme_name: scheme})
            existing = app_config.openapi_config.components
            components = [*existing] if isinstance(existing, list) else [existing] if existing else []
            # In place: dataclasses.replace would rerun OpenAPIConfig.__post_init__, which warns
            # about deprecated fields the user never set.
            app_config.openapi_config.components = [*components, ours]
        return app_config

    def _excluded(self, path: str, opt: dict[str, Any]) -> bool:
        if opt.get(self.exclude_opt_key):
            return True
        return self._exclude is not None and self._exclude.fullmatch(path) is not None

    def _take_over_guards(self, route: HTTPRoute, handler: HTTPRouteHandler) -> None:
        """Run this handler's guards in the middleware when that cannot change what anyone sees.

        Litestar copies the route handler for every guard call (tens of microseconds). Taken over
        only when every guard of the handler is one of ours (so their order is kept) and nothing
        sits between the middleware and the route: no other middleware, no CSRF, compression,
        allowed-hosts or response cache. A check's exception then reaches the same exception
        handlers, and the same ``send``, as the guard's would. Otherwise Litestar runs the guards.
        """
        guards = handler.resolve_guards()
        checks = [http_check(guard) for guard in guards]
        if not checks or None in checks:
            return
        app = handler.ownership_layers[0]
        if not isinstance(app, Litestar) or any(r.cache for r in route.route_handlers):
            return
        if app.csrf_config or app.compression_config or app.allowed_hosts:
            return
        ours = self._auth
        stack = handler.resolve_middleware()
        if stack != [ours]:  # identity: ASGIMiddleware has no __eq__
            return
        ours.add_http_checks(handler, [c for c in checks if c is not None])
        # Litestar skips guard handling for a handler whose resolved guard list is empty.
        handler._resolved_guards = []

    def receive_route(self, route: BaseRoute) -> None:
        """Mark each protected HTTP operation with the bearer security requirement."""
        if not isinstance(route, HTTPRoute):
            return
        requirement: dict[str, list[str]] = {self.security_scheme_name: []}
        for handler in route.route_handlers:
            self._take_over_guards(route, handler)
            if self._excluded(route.path_format, handler.opt):
                continue
            existing = list(handler.security or ())
            if requirement not in existing:
                # Per-operation (not app-wide) so excluded routes show up as public in the schema.
                handler.security = [*existing, requirement]
