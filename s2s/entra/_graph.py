"""A small async Microsoft Graph client for calls made with an on-behalf-of (or app) token."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from s2s.clock import system_clock
from s2s.entra._challenge import parse_claims_challenge
from s2s.entra.errors import (
    GraphError,
    GraphForbidden,
    GraphNotFound,
    GraphThrottled,
    GraphUnauthorized,
    GraphUnavailable,
    scrub,
)
from s2s.errors import ConfigError
from s2s.http import parse_retry_after

__all__ = ["GRAPH_V1", "GraphClient"]

log = logging.getLogger("s2s.entra.graph")

GRAPH_V1 = "https://graph.microsoft.com/v1.0"
_BY_STATUS: dict[int, type[GraphError]] = {
    401: GraphUnauthorized,
    403: GraphForbidden,
    404: GraphNotFound,
    429: GraphThrottled,
}

TokenProvider = Callable[[], Awaitable[str]]


class GraphClient:
    """``me()`` and ``get(path)`` against Graph with a bearer token.

    ``token`` is a token string or an async callable returning one (called per request, so a
    refreshing source fits). Paths are relative to ``base_url``; an absolute URL is accepted only
    when it starts with ``base_url`` (``@odata.nextLink``), so the token is never sent elsewhere.
    An injected ``http_client`` is left open; one made here (with ``transport``/``verify``) is
    closed by :meth:`aclose`.
    """

    def __init__(
        self,
        token: str | TokenProvider,
        *,
        base_url: str = GRAPH_V1,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 10.0,
    ) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        if not self.base_url.startswith("https://"):
            raise ConfigError("the Graph base URL must be https")
        self._own = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, verify=verify, timeout=timeout)

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def me(self) -> dict[str, Any]:
        """The signed-in user (``GET /me``)."""
        return await self.get("/me")

    async def get(self, path: str, *, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``GET`` a Graph resource and return its JSON object."""
        url = self._url(path)
        token = self._token if isinstance(self._token, str) else await self._token()
        try:
            response = await self._http.get(
                url, params=params, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            log.warning("Microsoft Graph call failed: %s", type(exc).__name__)
            raise GraphUnavailable(f"cannot reach Microsoft Graph ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise self._error(response, token)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise GraphUnavailable("Microsoft Graph answered with something other than a JSON object")
        return body

    def _url(self, path: str) -> str:
        if path.startswith(self.base_url + "/") or path == self.base_url:
            return path
        if "://" in path or path.startswith("//") or "\\" in path:
            raise ConfigError("a Graph path must be relative to the base URL")
        return f"{self.base_url}/{path.lstrip('/')}"

    def _error(self, response: httpx.Response, token: str) -> GraphError:
        status = response.status_code
        code: str | None = None
        message = ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code") if isinstance(body["error"].get("code"), str) else None
            raw = body["error"].get("message")
            message = raw if isinstance(raw, str) else ""
        cls = _BY_STATUS.get(status, GraphUnavailable if status >= 500 else GraphError)
        text = f"Microsoft Graph answered {status}" + (f" {code}" if code else "")
        if message:
            text += f": {message}"
        claims = parse_claims_challenge(response.headers.get("www-authenticate")) if status == 401 else None
        return cls(
            scrub(text, (token,)),
            status_code=status,
            code=code,
            claims=claims,
            retry_after=parse_retry_after(response.headers.get("retry-after"), system_clock.now()),
        )
