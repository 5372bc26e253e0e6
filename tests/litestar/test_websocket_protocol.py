"""A browser's WebSocket token: offered as the protocols ``["s2s.bearer", <token>]``.

The server echoes ``s2s.bearer`` (never the token), the app sees the offer without the token, and
the token appears in no answer and no log line. Off by default. Checked in process and as a raw
handshake through a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from litestar import Litestar, websocket
from litestar.connection import WebSocket
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.litestar import (
    WS_BEARER_PROTOCOL,
    WS_FORBIDDEN,
    WS_INVALID_REQUEST,
    WS_UNAUTHENTICATED,
    PrincipalDep,
    S2SAuthPlugin,
    requires_scopes,
)
from s2s.verify import VerifierConfig
from tests.litestar.conftest import AUDIENCE, ISSUER, REALM, JwksServer, Mint, close_code
from tests.support import free_port


def _app(jwks: JwksServer, clock: FakeClock, seen: list[dict[str, Any]], *, enabled: bool = True) -> Litestar:
    @websocket("/ws", requires=requires_scopes("orders:read"))
    async def ws(socket: WebSocket[Any, Any, Any], principal: PrincipalDep) -> None:
        seen.append({"subprotocols": list(socket.scope["subprotocols"]), "headers": dict(socket.headers)})
        wanted = "chat.v1" if "chat.v1" in socket.scope["subprotocols"] else None
        await socket.accept(subprotocols=wanted)
        await socket.send_json({"subject": principal.subject})
        await socket.close()

    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        realm=REALM,
        http_client=jwks.client(),
        clock=clock,
        websocket_protocol_token=enabled,
    )
    return Litestar([ws], plugins=[plugin], logging_config=None)


def test_token_in_the_offered_protocols(
    jwks: JwksServer, clock: FakeClock, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = mint()
    seen: list[dict[str, Any]] = []
    with TestClient(_app(jwks, clock, seen)) as client:
        with client.websocket_connect("/ws", subprotocols=[WS_BEARER_PROTOCOL, token]) as ws:
            assert ws.receive_json() == {"subject": "billing-service"}
            assert ws.accepted_subprotocol == WS_BEARER_PROTOCOL
        # The app's own protocol is echoed when it picks one.
        with client.websocket_connect("/ws", subprotocols=[WS_BEARER_PROTOCOL, token, "chat.v1"]) as ws:
            assert ws.receive_json() == {"subject": "billing-service"}
            assert ws.accepted_subprotocol == "chat.v1"
    assert seen[0]["subprotocols"] == [WS_BEARER_PROTOCOL]
    assert seen[1]["subprotocols"] == [WS_BEARER_PROTOCOL, "chat.v1"]
    for request in seen:
        assert token not in str(request), "the app saw the token"
    assert token not in caplog.text


@pytest.mark.parametrize(
    ("protocols", "headers", "code"),
    [
        ([WS_BEARER_PROTOCOL], {}, WS_INVALID_REQUEST),  # the token is missing
        ([WS_BEARER_PROTOCOL, "not-a-jwt"], {}, WS_UNAUTHENTICATED),
        ([WS_BEARER_PROTOCOL, "TOKEN", WS_BEARER_PROTOCOL, "TOKEN"], {}, WS_INVALID_REQUEST),
        ([WS_BEARER_PROTOCOL, "TOKEN"], {"Authorization": "Bearer TOKEN"}, WS_INVALID_REQUEST),
        ([WS_BEARER_PROTOCOL, "NOSCOPE"], {}, WS_FORBIDDEN),
        (["chat.v1", "TOKEN"], {}, WS_UNAUTHENTICATED),  # no marker: no token
    ],
)
def test_refusals(
    *,
    jwks: JwksServer,
    clock: FakeClock,
    mint: Mint,
    protocols: list[str],
    headers: dict[str, str],
    code: int,
) -> None:
    token, no_scope = mint(), mint(scope="other")
    protocols = [no_scope if p == "NOSCOPE" else token if p == "TOKEN" else p for p in protocols]
    headers = {k: v.replace("TOKEN", token) for k, v in headers.items()}
    seen: list[dict[str, Any]] = []
    with TestClient(_app(jwks, clock, seen)) as client:
        closed, reason = close_code(client, subprotocols=protocols, headers=headers)
    assert closed == code
    assert token not in reason
    assert seen == []


def test_off_by_default(jwks: JwksServer, clock: FakeClock, mint: Mint) -> None:
    seen: list[dict[str, Any]] = []
    with TestClient(_app(jwks, clock, seen, enabled=False)) as client:
        code, _ = close_code(client, subprotocols=[WS_BEARER_PROTOCOL, mint()])
    assert code == WS_UNAUTHENTICATED
    assert seen == []


# -- a raw handshake through uvicorn -----------------------------------------------------------------


@pytest.fixture
def port(jwks: JwksServer, clock: FakeClock) -> Iterator[int]:
    port = free_port()
    app = _app(jwks, clock, [])
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


def _handshake(port: int, protocols: str) -> tuple[bytes, bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: {protocols}",
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(1)
        head = data
        sock.settimeout(2)
        rest = b""
        try:
            while chunk := sock.recv(4096):
                rest += chunk
        except TimeoutError:
            pass
    return head, rest


def test_the_wire_echoes_the_marker_never_the_token(port: int, mint: Mint) -> None:
    token = mint()
    head, frames = _handshake(port, f"{WS_BEARER_PROTOCOL}, {token}")
    assert head.startswith(b"HTTP/1.1 101")
    assert f"sec-websocket-protocol: {WS_BEARER_PROTOCOL}\r\n".encode() in head.lower()
    assert token.encode() not in head + frames
    assert b"billing-service" in frames


def test_the_wire_shows_a_refusal_code_to_a_browser(port: int, mint: Mint) -> None:
    # A browser fails a handshake that names no protocol, and would never see the close code.
    token = mint(scope="other")
    head, frames = _handshake(port, f"{WS_BEARER_PROTOCOL}, {token}")
    assert head.startswith(b"HTTP/1.1 101")
    assert f"sec-websocket-protocol: {WS_BEARER_PROTOCOL}\r\n".encode() in head.lower()
    assert frames[0] & 0x0F == 0x8  # a close frame
    assert int.from_bytes(frames[2:4], "big") == WS_FORBIDDEN
    assert token.encode() not in head + frames
