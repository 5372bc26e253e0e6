"""``httpx.Auth`` that puts our issuer's bearer token on outgoing calls."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable

import httpx

from s2s.client._aio import AsyncTokenClient
from s2s.client._sync import TokenClient
from s2s.errors import ConfigError

__all__ = ["BearerAuth"]


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <token>`` for ``audience``/``scopes``.

    On a 401 from the resource the cached token is dropped (the resource may have seen a revoked
    key or a token the cache still thought valid) and the request is sent once more with a new
    token; a second 401 is returned to the caller as is. Use a :class:`TokenClient` with an
    ``httpx.Client`` and an :class:`AsyncTokenClient` with an ``httpx.AsyncClient``.
    """

    # The request may be sent twice: httpx must buffer a streamed body first.
    requires_request_body = True

    def __init__(
        self, client: TokenClient | AsyncTokenClient, audience: str, scopes: Iterable[str] | str = ()
    ) -> None:
        self.client = client
        self.audience = audience
        self.scopes = tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)

    def __repr__(self) -> str:
        return f"BearerAuth({self.client.client_id!r}, {self.audience!r}, {self.scopes!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        client = self.client
        if not isinstance(client, TokenClient):
            raise ConfigError("BearerAuth with an httpx.Client needs a TokenClient (not AsyncTokenClient)")
        token = client.get_token(self.audience, self.scopes)
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code == 401:
            client.invalidate(self.audience, self.scopes, token)
            token = client.get_token(self.audience, self.scopes)
            request.headers["Authorization"] = token.authorization
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        client = self.client
        if not isinstance(client, AsyncTokenClient):
            raise ConfigError("BearerAuth with an httpx.AsyncClient needs an AsyncTokenClient")
        token = await client.get_token(self.audience, self.scopes)
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code == 401:
            client.invalidate(self.audience, self.scopes, token)
            token = await client.get_token(self.audience, self.scopes)
            request.headers["Authorization"] = token.authorization
            yield request
