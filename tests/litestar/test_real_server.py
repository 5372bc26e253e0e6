"""The example resource service behind a real ASGI server (granian) on 127.0.0.1.

The test client cannot show what a browser or a WebSocket library sees: on real servers a close
sent before the handshake is accepted becomes a bare HTTP 403, so the plugin accepts first and
then closes with 4401 / 4403. This checks those close codes on the wire, and the RFC 6750 answers
through a real HTTP stack. The JWKS comes from a small HTTP server in this process.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from s2s.keys import KeyState, LocalSigner, SigningKey, generate_key
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
AUDIENCE = "orders-api"


class _Jwks(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Service:
    def __init__(self, port: int, issuer: str, key: SigningKey) -> None:
        self.port = port
        self.issuer = issuer
        self.key = key
        self.signer = LocalSigner()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "sub": "billing-service",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "scope": "orders:read",
            **claims,
        }
        return self.signer.sign(self.key, {"typ": "at+jwt"}, body)


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    key = generate_key("ES256", now=time.time(), state=KeyState.CURRENT)
    handler = type("Jwks", (_Jwks,), {"body": json.dumps({"keys": [key.public_jwk_entry()]}).encode()})
    jwks_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=jwks_server.serve_forever, daemon=True).start()
    issuer = f"http://127.0.0.1:{jwks_server.server_address[1]}"
    port = free_port()
    env = {
        **os.environ,
        "S2S_VERIFIER_ISSUER": issuer,
        "S2S_VERIFIER_AUDIENCE": AUDIENCE,
        "S2S_VERIFIER_JWKS_URI": f"{issuer}/.well-known/jwks.json",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        sys.executable, "-m", "granian", "services.resource.app:app", "--interface", "asgi",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"service did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            time.sleep(0.1)
        yield Service(port, issuer, key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        jwks_server.shutdown()
        jwks_server.server_close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def _websocket(service: Service, path: str, token: str | None) -> tuple[str, socket.socket]:
    """A minimal RFC 6455 client handshake (no WebSocket library is a dependency)."""
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{service.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += _recv_exact(sock, 1)
    return head.split(b"\r\n", 1)[0].decode(), sock


def _frame(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _recv_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(_recv_exact(sock, 2), "big")
    elif length == 127:
        length = int.from_bytes(_recv_exact(sock, 8), "big")
    return first & 0x0F, _recv_exact(sock, length)


def _close_code(service: Service, token: str | None) -> int:
    status, sock = _websocket(service, "/orders/feed", token)
    with sock:
        assert " 101 " in status + " ", status
        opcode, payload = _frame(sock)
    assert opcode == 0x8, "expected a close frame"
    return int.from_bytes(payload[:2], "big")


def test_http_refusal_through_a_real_server(service: Service) -> None:
    response = httpx.get(f"{service.url}/orders")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="orders"'
    assert response.headers["cache-control"] == "no-store"
    bad = service.token(aud="someone-else")
    response = httpx.get(f"{service.url}/orders", headers={"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert bad.split(".")[2] not in response.text


def test_http_success_through_a_real_server(service: Service) -> None:
    response = httpx.get(f"{service.url}/orders", headers={"Authorization": f"Bearer {service.token()}"})
    assert response.status_code == 200
    assert response.json()[0]["item"] == "paper"


def test_websocket_success_on_the_wire(service: Service) -> None:
    status, sock = _websocket(service, "/orders/feed", service.token())
    with sock:
        assert " 101 " in status + " ", status
        opcode, payload = _frame(sock)
    assert opcode == 0x1
    assert json.loads(payload)["subject"] == "billing-service"


def test_websocket_close_codes_on_the_wire(service: Service) -> None:
    assert _close_code(service, None) == 4401
    assert _close_code(service, service.token(aud="someone-else")) == 4401
    assert _close_code(service, service.token(scope="orders:write")) == 4403
