"""The asyncio token client (``httpx.AsyncClient``). Its twin is :mod:`s2s.client._sync`."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx

from s2s.client._assertions import AssertionSource, obtain_async
from s2s.client._core import (
    CacheKey,
    Flow,
    Obtain,
    RefreshPolicy,
    RetryPolicy,
    Sleep,
    TokenClientBase,
)
from s2s.client._credentials import ClientAssertion, ClientSecret, PrivateKeyJWT
from s2s.client.errors import TokenClientError
from s2s.clock import Clock, system_clock
from s2s.oauth import AccessToken
from s2s.secrets import SecretSource

__all__ = ["AsyncTokenClient"]

log = logging.getLogger("s2s.client")


def _consume(task: asyncio.Task[AccessToken]) -> None:
    # Every waiter may have been cancelled; reading the outcome keeps asyncio from reporting an
    # exception "never retrieved" (the waiters that remain get it through the shield).
    if not task.cancelled():
        task.exception()


class AsyncTokenClient(TokenClientBase):
    """Client-credentials tokens from our issuer, cached and refreshed ahead of expiry.

    Same behaviour as :class:`~s2s.client.TokenClient`, for one event loop: concurrent callers for
    the same (audience, scopes) await one shared task; a caller that is cancelled does not cancel
    the request the others wait for.
    """

    def __init__(
        self,
        token_endpoint: str | None = None,
        *,
        client_id: str,
        client_secret: str | ClientSecret | None = None,
        private_key: str | os.PathLike[str] | PrivateKeyJWT | None = None,
        client_assertion: ClientAssertion | AssertionSource | None = None,
        issuer: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = system_clock,
        refresh: RefreshPolicy | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        secret_source: SecretSource | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        retry = self._setup(
            token_endpoint,
            client_id=client_id,
            client_secret=client_secret,
            private_key=private_key,
            client_assertion=client_assertion,
            issuer=issuer,
            clock=clock,
            refresh=refresh,
            retry=retry,
            rng=rng,
            secret_source=secret_source,
            http_given=http_client is not None,
            transport_given=transport is not None,
            allow_insecure_http=allow_insecure_http,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=retry.timeout)
        self._sleep = sleep
        self._inflight: dict[CacheKey, asyncio.Task[AccessToken]] = {}
        self._discovery_lock = asyncio.Lock()

    # -- public API ---------------------------------------------------------------------------
    async def get_token(self, audience: str | None, scopes: Iterable[str] | str = ()) -> AccessToken:
        """A valid token for ``audience`` with ``scopes``: cached, refreshed ahead, single-flight.

        ``audience`` None sends none: the issuer gives the client's only audience.
        """
        key = self._flows.key(audience, scopes)
        token, fresh = self._flows.lookup(key)
        task = self._inflight.get(key)
        if token is not None and (fresh or task is not None):
            self._flows.stats.cache_hits += 1
            self._flows.observer.client_token(self._flows.client_id, "cache")
            return token
        if task is None:
            task = asyncio.ensure_future(self._obtain(key, token))
            self._inflight[key] = task
            task.add_done_callback(self._forget(key))
            task.add_done_callback(_consume)
        else:
            self._flows.stats.joined += 1
        return await asyncio.shield(task)

    def invalidate(
        self, audience: str | None, scopes: Iterable[str] | str = (), token: AccessToken | None = None
    ) -> bool:
        """Drop the cached token (only if it is ``token``, when given: a newer one is kept)."""
        return self._flows.drop(self._flows.key(audience, scopes), token)

    def clear(self) -> None:
        self._flows.clear()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncTokenClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- I/O ----------------------------------------------------------------------------------
    def _forget(self, key: CacheKey) -> Callable[[asyncio.Task[AccessToken]], None]:
        def forget(task: asyncio.Task[AccessToken]) -> None:
            if self._inflight.get(key) is task:
                del self._inflight[key]

        return forget

    async def _obtain(self, key: CacheKey, stale: AccessToken | None) -> AccessToken:
        try:
            if self._flows.token_endpoint is None:
                async with self._discovery_lock:  # one metadata request, whatever the number of keys
                    if self._flows.token_endpoint is None:
                        await self._run(self._flows.discovery())
            # A refresh while a valid token is cached is one try within that token's life: the
            # caller is never kept waiting on, nor failed by, an issuer that is down.
            within = self._flows.remaining(key) if stale is not None else None
            with self._flows.observer.span("s2s.client.token_request", **{"s2s.audience": key[0] or ""}):
                token: AccessToken = await self._run(self._flows.fetch(key, within=within or None))
        except TokenClientError as exc:
            if stale is None or self._flows.lookup(key)[0] is None:
                self._flows.observer.client_token(self._flows.client_id, "error")
                raise
            # A refresh ahead of expiry failed, but the cached token is still valid: use it, and
            # let the next caller try again only after a backoff.
            self._flows.defer(key, self._flows.retry.max_delay)
            log.warning("token refresh for %s failed (%s); using the cached token", key[0], exc.error)
            self._flows.observer.client_token(self._flows.client_id, "stale")
            return stale
        self._flows.store(key, token)
        return token

    async def _run(self, flow: Flow) -> Any:
        try:
            step = next(flow)
            while True:
                outcome: httpx.Response | Exception | str | None
                if isinstance(step, Obtain):
                    # A source's failure is the caller's (typed) error: the flow does not retry it.
                    outcome = await obtain_async(step.source)
                elif isinstance(step, Sleep):
                    await self._sleep(step.seconds)
                    outcome = None
                else:
                    try:
                        # auth=None: never the http client's own auth (it may be a BearerAuth on us).
                        outcome = await self._http.send(step.request, auth=None, follow_redirects=False)
                    except httpx.HTTPError as exc:
                        outcome = exc
                step = flow.send(outcome)
        except StopIteration as stop:
            return stop.value
