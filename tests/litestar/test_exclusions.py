"""No spelling of a path walks out of an exclusion (issue 9, item 1).

``exclude=[r"/static/pub/.*"]`` next to a private directory: whatever the request spells (``..``,
``.``, ``%2e%2e``, ``..%2f``, ``%2f``, doubled slashes, a mix), only what is really under the
excluded prefix is served without a token. Covered for Litestar's static-files router, a
``{p:path}`` handler and a mounted ASGI app, each serving files from one directory the way such
routes do (resolving the segments inside their root), in process (scopes spelled the way uvicorn
spells them) and as raw HTTP through a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import uvicorn
from litestar import Litestar, asgi, get
from litestar.static_files import create_static_files_router
from litestar.types import Receive, Scope, Send

from s2s.clock import FakeClock
from s2s.litestar import S2SAuthPlugin
from s2s.verify import VerifierConfig
from tests.litestar.conftest import AUDIENCE, ISSUER, JwksServer, Mint
from tests.support import free_port

SECRET = "TOP-SECRET-CONTENT"
PUBLIC = "public hello"
PREFIXES = ("/static", "/files", "/mnt")
# Each spelling of "<prefix>/pub/../private/secret.txt" a client can send.
WALKS = [
    "/pub/../private/secret.txt",
    "/pub/%2e%2e/private/secret.txt",
    "/pub/%2E%2E/private/secret.txt",
    "/pub/.%2e/private/secret.txt",
    "/pub/..%2fprivate/secret.txt",
    "/pub%2f..%2fprivate/secret.txt",
    "/pub/./../private/secret.txt",
    "/pub//..//private/secret.txt",
    "/pub/.//..//private/secret.txt",
    "/pub/%2e/%2e%2e/private/secret.txt",
    "/pub/%252e%252e/private/secret.txt",
    "/pub/..%5cprivate/secret.txt",
    "/./pub/../private/secret.txt",
]


def _serve_file(root: Path, relative: str) -> bytes | None:
    """A file below ``root`` (segments resolved, as a file server does), or None."""
    target = (root / unquote(relative).lstrip("/")).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        return None
    return target.read_bytes()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "pub").mkdir()
    (tmp_path / "private").mkdir()
    (tmp_path / "pub" / "hello.txt").write_text(PUBLIC)
    (tmp_path / "private" / "secret.txt").write_text(SECRET)
    return tmp_path


@pytest.fixture
def app(site: Path, jwks: JwksServer, clock: FakeClock) -> Litestar:
    @get("/files/{p:path}", media_type="text/plain")
    async def files(p: str) -> bytes:
        body = _serve_file(site, p)
        if body is None:
            from litestar.exceptions import NotFoundException

            raise NotFoundException()
        return body

    @asgi("/mnt", is_mount=True)
    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        body = _serve_file(site, scope["path"])
        status, body = (404, b"") if body is None else (200, body)
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        exclude=[r"/static/pub/.*", r"/files/pub/.*", r"/mnt/pub/.*"],
        http_client=jwks.client(),
        clock=clock,
    )
    return Litestar(
        [create_static_files_router(path="/static", directories=[site]), files, mounted],
        plugins=[plugin],
        logging_config=None,
        openapi_config=None,
    )


# -- in process: scopes as uvicorn builds them ------------------------------------------------------


def _scope(target: str, token: str | None) -> dict[str, Any]:
    headers = [(b"host", b"testserver")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    # uvicorn: raw_path is the target as sent; path is its percent-decoding (".." kept).
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": unquote(target), "raw_path": target.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
    }  # fmt: skip


def _call(app: Litestar, requests: list[tuple[str, str | None]]) -> list[tuple[int, bytes]]:
    async def run() -> list[tuple[int, bytes]]:
        answers = []
        async with app.lifespan():
            for target, token in requests:
                sent: list[Any] = []

                async def receive() -> dict[str, Any]:
                    return {"type": "http.request", "body": b"", "more_body": False}

                async def send(message: Any, sent: list[Any] = sent) -> None:
                    sent.append(message)

                await app(_scope(target, token), receive, send)  # type: ignore[arg-type]
                status = next(m["status"] for m in sent if m["type"] == "http.response.start")
                body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
                answers.append((status, body))
        return answers

    return asyncio.run(run())


@pytest.mark.parametrize("prefix", PREFIXES)
def test_no_spelling_walks_out_of_an_exclusion_in_process(app: Litestar, mint: Mint, prefix: str) -> None:
    token = mint()
    answers = _call(
        app,
        [
            (f"{prefix}/pub/hello.txt", None),
            (f"{prefix}/private/secret.txt", None),
            *((prefix + walk, None) for walk in WALKS),
            # The spelling does reach the secret, for a caller with a token.
            (f"{prefix}/pub/../private/secret.txt", token),
        ],
    )
    assert answers[0] == (200, PUBLIC.encode())
    assert answers[1][0] == 401
    for walk, (status, body) in zip(WALKS, answers[2:-1], strict=True):
        assert SECRET.encode() not in body, f"{prefix}{walk} served the secret without a token"
        assert status in (400, 401, 404), f"{prefix}{walk}: {status}"
    assert answers[-1] == (200, SECRET.encode())


# -- raw HTTP through a real uvicorn server ----------------------------------------------------------


@pytest.fixture
def server(app: Litestar) -> Iterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _raw_get(port: int, target: str, token: str | None = None) -> tuple[int, bytes]:
    """One GET with ``target`` sent byte for byte (no client normalises it)."""
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("prefix", PREFIXES)
def test_no_spelling_walks_out_of_an_exclusion_over_raw_http(server: int, mint: Mint, prefix: str) -> None:
    assert _raw_get(server, f"{prefix}/pub/hello.txt") == (200, PUBLIC.encode())
    assert _raw_get(server, f"{prefix}/private/secret.txt")[0] == 401
    for walk in WALKS:
        status, body = _raw_get(server, prefix + walk)
        assert SECRET.encode() not in body, f"{prefix}{walk} served the secret without a token"
        assert status in (400, 401, 404), f"{prefix}{walk}: {status}"
    assert _raw_get(server, f"{prefix}/pub/../private/secret.txt", mint()) == (200, SECRET.encode())
