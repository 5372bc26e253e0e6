"""A raw-socket HTTP server on 127.0.0.1 that misbehaves on purpose: it answers late, hangs, or
trickles its response headers a byte at a time (what httpx's per-read timeouts never catch).

The test that starts it stops it (a context manager); every connection is counted."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Route:
    body: Any = None  # JSON body (None: the route never answers, it hangs or trickles)
    delay: float = 0.0  # seconds before the answer starts
    trickle: float = 0.0  # > 0: send headers one byte per this many seconds, then close unfinished
    trickle_bytes: int = 40


@dataclass
class SlowServer:
    routes: dict[str, Route] = field(default_factory=dict)
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sock: socket.socket | None = None

    @property
    def url(self) -> str:
        assert self._sock is not None
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.2)
            data = b""
            while b"\r\n\r\n" not in data and not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
            if self._stop.is_set():
                return
            path = data.split(b" ", 2)[1].decode()
            self.requests.append(path)
            route = self.routes.get(path, Route(body={"error": "not found"}))
            if self._stop.wait(route.delay):
                return
            if route.trickle:
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"x" * 10_000
                for byte in head[: route.trickle_bytes]:
                    if self._stop.wait(route.trickle):
                        return
                    with contextlib.suppress(OSError):
                        conn.sendall(bytes((byte,)))
                return
            if route.body is None:
                self._stop.wait()
                return
            body = json.dumps(route.body).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            with contextlib.suppress(OSError):
                conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)

    @contextlib.contextmanager
    def running(self) -> Iterator[SlowServer]:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        acceptor.start()
        try:
            yield self
        finally:
            self._stop.set()
            acceptor.join(5)
            self._sock.close()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()


def elapsed(start: float) -> float:
    return time.monotonic() - start
