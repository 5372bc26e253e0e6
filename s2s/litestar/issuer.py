"""The issuer as a Litestar app: token endpoint, JWKS, metadata, health, readiness and metrics.

All logic lives in :mod:`s2s.issuer`; this module only moves bytes between HTTP and it. The token
route takes the raw request (no DTO, no validation layer) and answers with pre-built headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from litestar import Litestar, MediaType, Request, Response, asgi, get, route
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Receive, Scope, Send

from s2s.errors import ConfigError
from s2s.issuer import (
    InvalidTokenRequest,
    IssuerParts,
    IssuerRuntime,
    IssuerSettings,
    TemporarilyUnavailable,
    build_issuer,
    server_metadata,
)
from s2s.issuer._metadata import (
    AUTHORIZE_PATH,
    OPENID_CONFIGURATION_PATH,
    authorization_error,
    openid_configuration,
)
from s2s.issuer._token import NO_STORE, TokenResponse
from s2s.oauth import JWKS_PATH, METADATA_PATH, TOKEN_PATH
from s2s.observe import HUB, Fanout, ObserveSettings, configure_logging, setup_from_env
from s2s.observe._access import bearer_matches, local_peer

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["IssuerRuntime", "configure_host_logging", "create_issuer_app"]

JSON = "application/json"
log = logging.getLogger("s2s.issuer")


def configure_host_logging() -> None:
    """Logging for a process that hosts the issuer (``s2s serve``, ``services/issuer``).

    The app itself leaves logging to its host: Litestar's default config would replace the root
    handlers. botocore's INFO lines (where credentials were found, endpoint notes) are noise here.
    """
    configure_logging(logging.INFO)  # text, or JSON lines with S2S_LOG_FORMAT=json
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _record_readiness(runtime: IssuerRuntime) -> None:
    """The readiness gauge, as ``/ready`` would answer now (a scrape reads it fresh)."""
    runtime.observer.readiness(bool(runtime.readiness.readiness()) and runtime.keys.current is not None)


class _HashPool:
    """Runs slow secret hashes (scrypt hashes of earlier versions, until upgraded) in worker
    threads: at most ``size`` at once and ``queue`` waiting. When both are full the request is
    answered ``503 temporarily_unavailable`` + ``Retry-After`` at once, so a flood of wrong secrets
    cannot build a queue that delays everyone (each scrypt check holds ~32 MiB and tens of ms).
    """

    def __init__(self, size: int, queue: int) -> None:
        self._size = size
        self._max_pending = size + queue
        self._pending = 0
        self._limiter: anyio.CapacityLimiter | None = None

    async def __call__(self, fn: Callable[[], bool]) -> bool:
        if self._pending >= self._max_pending:
            raise TemporarilyUnavailable("the issuer is busy; retry later")
        if self._limiter is None:  # created lazily: it belongs to the running event loop
            self._limiter = anyio.CapacityLimiter(self._size)
        self._pending += 1  # one event loop: no lock needed between the check and the count
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self._limiter)
        finally:
            self._pending -= 1


def _response(out: TokenResponse, extra: dict[str, str] | None = None) -> Response[bytes]:
    headers = {**out.headers, **extra} if extra else out.headers
    return Response(out.body, status_code=out.status, headers=headers, media_type=JSON)


_JSON_HEADERS = ((b"content-type", b"application/json"),)
_ENCODED: dict[tuple[str, str], tuple[bytes, bytes]] = {}


def _encode(name: str, value: str) -> tuple[bytes, bytes]:
    pair = _ENCODED.get((name, value))
    if pair is None:
        pair = (name.lower().encode("latin-1"), value.encode("latin-1"))
        if len(_ENCODED) < 256:  # only static headers repeat; Retry-After values are few
            _ENCODED[(name, value)] = pair
    return pair


_NO_STORE_HEADERS = tuple(_encode(k, v) for k, v in NO_STORE.items())


async def _send(send: Send, out: TokenResponse) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", b"%d" % len(out.body))]
    if out.headers is NO_STORE:  # every token issued: its headers are encoded once
        headers += _NO_STORE_HEADERS
    else:
        headers += [_encode(k, v) for k, v in out.headers.items()]
    await send({"type": "http.response.start", "status": out.status, "headers": headers})
    await send({"type": "http.response.body", "body": out.body, "more_body": False})


def create_issuer_app(
    settings: IssuerSettings | None = None,
    *,
    reload_loop: bool = True,
    observe: ObserveSettings | None = None,
    **parts: Unpack[IssuerParts],
) -> Litestar:
    """The issuer app, built by :func:`s2s.issuer.build_issuer` from ``settings`` (default: the
    ``S2S_*`` environment); each keyword of :class:`~s2s.issuer.IssuerParts` replaces one part.

    ``reload_loop=False`` loads the keyset once at startup and never again (tests drive
    ``app.state.s2s_issuer.keys.refresh()`` themselves with a fake clock).

    ``observe`` (default: the ``S2S_METRICS*`` / ``S2S_OTEL`` environment): the app counts in its
    own Prometheus registry (``app.state.s2s_metrics``), served at ``/metrics`` (behind a bearer
    token with ``S2S_METRICS_TOKEN``) or on its own port (``S2S_METRICS_PORT``); see docs/operate.md.
    """
    settings = settings or IssuerSettings.from_env()
    observe = setup_from_env(observe)
    metrics = None
    if observe.metrics and "observer" not in parts:
        from s2s.observe.prometheus import PrometheusObserver  # noqa: PLC0415 - the adapter's own

        metrics = PrometheusObserver()
        parts["observer"] = Fanout([HUB, metrics])
    runtime = build_issuer(settings, **parts)
    keys, endpoint, observer = runtime.keys, runtime.endpoint, runtime.observer

    # An issuer URL with a path (https://host/s2s: MSAL Python wants a path segment in its
    # authority) serves its endpoints under that path, as its metadata names them; RFC 8414 §3.1
    # metadata sits at /.well-known/oauth-authorization-server/s2s (and, for s2s's own token
    # client, which appends the well-known path, also under the prefix). Health, readiness and
    # metrics stay at the root.
    base = urlsplit(settings.issuer).path.rstrip("/")
    token_path = base + TOKEN_PATH
    metadata_bytes = json.dumps(server_metadata(settings), separators=(",", ":")).encode()
    openid_bytes = json.dumps(openid_configuration(settings), separators=(",", ":")).encode()
    public_cache = {"Cache-Control": f"public, max-age={settings.jwks_max_age}"}
    no_store = {"Cache-Control": "no-store"}
    max_body = settings.max_body_bytes
    body_timeout = settings.body_timeout
    workers = max(1, min(4, os.cpu_count() or 1))
    run_sync = _HashPool(workers, queue=4 * workers)

    def refuse(description: str) -> TokenResponse:
        return endpoint.error_response(InvalidTokenRequest(description))

    @asgi(token_path, copy_scope=False)
    async def token(scope: Scope, receive: Receive, send: Send) -> None:
        # A raw ASGI route: no request object, signature model or response object per call; the
        # endpoint gets bytes and returns bytes. This keeps the route near a bare handler's speed.
        if scope.get("method") != "POST":
            out = refuse("the token endpoint accepts only POST")
            await _send(send, TokenResponse(405, out.body, {**out.headers, "Allow": "POST"}))
            return
        content_type = authorization = None
        length = -1
        duplicate_auth = False
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                duplicate_auth = authorization is not None
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                length = int(value) if value.isdigit() and len(value) < 10 else max_body + 1
        if duplicate_auth:
            await _send(send, refuse("more than one Authorization header"))
            return
        if length > max_body:
            await _send(send, refuse("the token request is too large"))
            return
        chunks: list[bytes] = []
        size = 0
        try:
            # One deadline over the whole body: a body trickling a byte at a time gets 408, it
            # does not hold the route (uvicorn has no body timeout of its own).
            async with asyncio.timeout(body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > max_body:
                        await _send(send, refuse("the token request is too large"))
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            out = refuse("the token request body was not received in time")
            await _send(send, TokenResponse(408, out.body, {**out.headers, "Connection": "close"}))
            return
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        peer = scope.get("client")
        source = peer[0] if peer else None
        started = time.perf_counter()
        with observer.span("s2s.token"):
            out = await endpoint.process(body, content_type, authorization, run_sync, source)
        observer.token_request(out.status, time.perf_counter() - started)
        await _send(send, out)

    @get(base + JWKS_PATH, include_in_schema=False)
    async def jwks() -> Response[bytes]:
        if keys.keyset is None:
            return Response(
                b'{"error":"keys not loaded"}', status_code=503, headers=no_store, media_type=JSON
            )
        return Response(keys.jwks_bytes, headers=public_cache, media_type=JSON)

    @get(sorted({METADATA_PATH + base, base + METADATA_PATH}), include_in_schema=False)
    async def metadata() -> Response[bytes]:
        return Response(metadata_bytes, headers=public_cache, media_type=JSON)

    @get(base + OPENID_CONFIGURATION_PATH, include_in_schema=False)
    async def openid_metadata() -> Response[bytes]:
        return Response(openid_bytes, headers=public_cache, media_type=JSON)

    @route(base + AUTHORIZE_PATH, http_method=["GET", "POST"], include_in_schema=False)
    async def authorize(request: Request[Any, Any, Any]) -> Response[bytes]:
        # No login here: every request gets an RFC 6749 error, never a redirect (see metadata).
        status, body = authorization_error(dict(request.query_params))
        return Response(body, status_code=status, headers=NO_STORE, media_type=JSON)

    @get("/health", include_in_schema=False)
    async def health() -> Response[bytes]:
        return Response(b'{"status":"ok"}', headers=no_store, media_type=JSON)

    @get("/ready", include_in_schema=False)
    async def ready() -> Response[bytes]:
        # Reads what the background probes recorded: never waits on a dependency itself.
        readiness, current = runtime.readiness.readiness(), keys.current
        if not readiness or current is None:
            body = json.dumps({"status": "not ready", "reason": readiness.reason}).encode()
            return Response(body, status_code=503, headers=no_store, media_type=JSON)
        answer: dict[str, Any] = {"status": "ready", "kid": current.kid}
        warnings = runtime.readiness.warnings()
        if warnings:
            answer["warnings"] = list(warnings)
        return Response(json.dumps(answer).encode(), headers=no_store, media_type=JSON)

    metrics_token = observe.metrics_token
    not_found = Response(b'{"error":"not found"}', status_code=404, headers=no_store, media_type=JSON)

    @get("/metrics", include_in_schema=False)
    async def metrics_route(request: Request[Any, Any, Any]) -> Response[bytes]:
        if metrics is None:
            return not_found
        if metrics_token is not None:
            if not bearer_matches(request.headers.get("authorization", ""), metrics_token):
                challenge = {**no_store, "WWW-Authenticate": 'Bearer realm="metrics"'}
                return Response(
                    b'{"error":"unauthorized"}', status_code=401, headers=challenge, media_type=JSON
                )
        elif not local_peer(request.client.host if request.client else None, request.headers):
            # They list every client id and audience: without a token, for this machine only.
            return not_found
        _record_readiness(runtime)
        body, content_type = metrics.render()
        return Response(body, headers=no_store, media_type=content_type)

    def http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        status = exc.status_code if isinstance(exc, HTTPException) else HTTP_500_INTERNAL_SERVER_ERROR
        if request.scope.get("path") == token_path:
            if status >= 500:
                return _response(endpoint.error_response(exc))
            if status == 405:
                out = refuse("the token endpoint accepts only POST")
                return _response(TokenResponse(405, out.body, out.headers), {"Allow": "POST"})
            return _response(refuse("bad request"))
        if status >= 500:
            return Response(
                {"error": "server_error"}, status_code=status, headers=no_store, media_type=MediaType.JSON
            )
        detail = exc.detail if isinstance(exc, HTTPException) else "bad request"
        return Response({"error": detail}, status_code=status, headers=no_store, media_type=MediaType.JSON)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await asyncio.to_thread(keys.refresh)
        problem = keys.problem
        if keys.keyset is None and problem is not None and problem.startswith("keyset refused"):
            # A store that answers with keys nobody can sign with will not fix itself: refuse to start.
            raise ConfigError(f"{keys.store.url}: {problem}")
        tasks = []
        metrics_server = None
        if metrics is not None and observe.metrics_port is not None:
            from s2s.observe.prometheus import multiprocess, serve_metrics  # noqa: PLC0415 - same

            # With several workers `s2s serve` serves that port itself, for all of them.
            if not multiprocess():
                metrics_server = serve_metrics(
                    metrics.registry, observe.metrics_host, observe.metrics_port, observe.metrics_token
                )
        elif metrics is not None and metrics_token is None:
            log.info(
                "/metrics answers callers on this machine only; to scrape it from elsewhere set "
                "S2S_METRICS_TOKEN (a bearer token) or S2S_METRICS_PORT (a separate port)"
            )
        if reload_loop:
            tasks.append(asyncio.create_task(keys.run()))
            tasks.append(asyncio.create_task(runtime.readiness.run()))
        else:
            await asyncio.to_thread(runtime.readiness.check_all)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if runtime.pool is not None:
                runtime.pool.close()
            runtime.endpoint.close()
            if metrics_server is not None:
                metrics_server.shutdown()

    return Litestar(
        route_handlers=[
            token,
            jwks,
            metadata,
            openid_metadata,
            authorize,
            health,
            ready,
            # On its own port instead when S2S_METRICS_PORT is set (not served to token callers).
            *([metrics_route] if observe.metrics_port is None else []),
        ],
        exception_handlers={Exception: http_error},
        lifespan=[lifespan],
        openapi_config=None,
        state=State({"s2s_issuer": runtime, "s2s_metrics": metrics}),
        debug=False,
        # The app leaves the process's logging alone: Litestar's default config replaces the root
        # handlers (and with them any handler the host or a test installed). `s2s serve` and
        # services/issuer configure logging themselves.
        logging_config=None,
    )
