"""The blocking token client (``httpx.Client``). Its twin is :mod:`s2s.client._aio`."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from s2s.client._assertions import AssertionSource
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

__all__ = ["TokenClient"]

log = logging.getLogger("s2s.client")


class _Call:
    """One token request in flight, shared by every caller that wants the same token."""

    __slots__ = ("done", "error", "token")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: AccessToken | None = None
        self.error: BaseException | None = None


class TokenClient(TokenClientBase):
    """Client-credentials tokens from our issuer, cached and refreshed ahead of expiry.

    Thread-safe. ``get_token`` returns a cached token while more than the refresh margin is left;
    in the margin, one caller refreshes while the others keep using the still-valid token; with no
    valid token, concurrent callers for the same (audience, scopes) wait for one shared request.
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
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = system_clock,
        refresh: RefreshPolicy | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
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
        self._http = http_client or httpx.Client(transport=transport, timeout=retry.timeout)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._discovery_lock = threading.Lock()
        self._inflight: dict[CacheKey, _Call] = {}

    # -- public API ---------------------------------------------------------------------------
    def get_token(self, audience: str | None, scopes: Iterable[str] | str = ()) -> AccessToken:
        """A valid token for ``audience`` with ``scopes``: cached, refreshed ahead, single-flight.

        ``audience`` None sends none: the issuer gives the client's only audience.
        """
        key = self._flows.key(audience, scopes)
        with self._lock:
            token, fresh = self._flows.lookup(key)
            call = self._inflight.get(key)
            if token is not None and (fresh or call is not None):
                self._flows.stats.cache_hits += 1
                self._flows.observer.client_token(self._flows.client_id, "cache")
                return token
            leader = call is None
            if call is None:
                call = self._inflight[key] = _Call()
            else:
                self._flows.stats.joined += 1
        if not leader:
            call.done.wait()
            if call.token is not None:
                return call.token
            if isinstance(call.error, Exception):
                raise call.error
            raise TokenClientError("the shared token request was interrupted")
        try:
            call.token = self._obtain(key, token)
            return call.token
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._inflight[key]
            call.done.set()

    def invalidate(
        self, audience: str | None, scopes: Iterable[str] | str = (), token: AccessToken | None = None
    ) -> bool:
        """Drop the cached token (only if it is ``token``, when given: a newer one is kept)."""
        with self._lock:
            return self._flows.drop(self._flows.key(audience, scopes), token)

    def clear(self) -> None:
        with self._lock:
            self._flows.clear()

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> TokenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- I/O ----------------------------------------------------------------------------------
    def _obtain(self, key: CacheKey, stale: AccessToken | None) -> AccessToken:
        try:
            if self._flows.token_endpoint is None:
                with self._discovery_lock:  # one metadata request, whatever the number of keys
                    if self._flows.token_endpoint is None:
                        self._run(self._flows.discovery())
            # A refresh while a valid token is cached is one try within that token's life: the
            # caller is never kept waiting on, nor failed by, an issuer that is down.
            with self._lock:
                within = self._flows.remaining(key) if stale is not None else None
            with self._flows.observer.span("s2s.client.token_request", **{"s2s.audience": key[0] or ""}):
                token: AccessToken = self._run(self._flows.fetch(key, within=within or None))
        except TokenClientError as exc:
            if stale is None or self._flows.lookup(key)[0] is None:
                self._flows.observer.client_token(self._flows.client_id, "error")
                raise
            # A refresh ahead of expiry failed, but the cached token is still valid: use it, and
            # let the next caller try again only after a backoff.
            with self._lock:
                self._flows.defer(key, self._flows.retry.max_delay)
            log.warning("token refresh for %s failed (%s); using the cached token", key[0], exc.error)
            self._flows.observer.client_token(self._flows.client_id, "stale")
            return stale
        with self._lock:
            self._flows.store(key, token)
        return token

    def _run(self, flow: Flow) -> Any:
        try:
            step = next(flow)
            while True:
                outcome: httpx.Response | Exception | str | None
                if isinstance(step, Obtain):
                    # A source's failure is the caller's (typed) error: the flow does not retry it.
                    outcome = step.source.get()
                elif isinstance(step, Sleep):
                    self._sleep(step.seconds)
                    outcome = None
                else:
                    try:
                        # auth=None: never the http client's own auth (it may be a BearerAuth on us).
                        outcome = self._http.send(step.request, auth=None, follow_redirects=False)
                    except httpx.HTTPError as exc:
                        outcome = exc
                step = flow.send(outcome)
        except StopIteration as stop:
            return stop.value
