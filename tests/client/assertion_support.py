"""Platform-token doubles for the assertion-source tests: JWT-shaped tokens, the kubelet's projected
volume layout, and a real token endpoint on 127.0.0.1 that checks the posted assertion."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from s2s.jose import b64url_encode

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def platform_token(exp: float, *, sub: str = "system:serviceaccount:prod:orders", **claims: Any) -> str:
    """A JWT-shaped token (the client never verifies it: the issuer does)."""
    head = b64url_encode(json.dumps({"alg": "RS256", "kid": "k8s", "typ": "JWT"}).encode())
    body = b64url_encode(
        json.dumps({"sub": sub, "exp": int(exp), "jti": secrets.token_hex(8), **claims}).encode()
    )
    return f"{head}.{body}.{b64url_encode(secrets.token_bytes(32))}"


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def write_atomically(path: Path, text: str) -> None:
    """Write a temporary file beside ``path`` and rename it over (what most token writers do)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class ProjectedVolume:
    """The kubelet's AtomicWriter layout: ``token -> ..data/token`` and ``..data -> ..<timestamp>``;
    a rewrite fills a new timestamped directory and swaps the ``..data`` symlink with a rename."""

    def __init__(self, root: Path, name: str = "token") -> None:
        self.root = root
        self.name = name
        self.writes = 0
        root.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.root / self.name

    def write(self, text: str) -> None:
        self.writes += 1
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        stamp = self.root / f"..2026_12_02_04_00_00.{self.writes:09d}"
        stamp.mkdir()
        (stamp / self.name).write_text(text)
        os.chmod(stamp / self.name, 0o600)
        tmp = self.root / "..data_tmp"
        os.symlink(stamp.name, tmp)
        os.replace(tmp, data)  # the one atomic step
        if not self.path.is_symlink():
            os.symlink(f"..data/{self.name}", self.path)
        if old is not None:
            shutil.rmtree(self.root / old)


@dataclass
class Rotation:
    """What a writer has put in the file so far: generation ``n`` is ``tokens[n]``."""

    tokens: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def generation(self) -> int:
        with self.lock:
            return len(self.tokens) - 1

    def publish(self, write: Callable[[str], None], token: str) -> None:
        """Write and record as one step: whoever looks up a token or the generation sees both."""
        with self.lock:
            write(token)
            self.tokens.append(token)

    def index(self, token: str) -> int | None:
        with self.lock:
            try:
                return self.tokens.index(token)
            except ValueError:
                return None


@dataclass
class TokenServer:
    """A real token endpoint on 127.0.0.1. ``check(assertion)`` returns a refusal reason or None;
    accepted requests get an access token, refused ones RFC 6749 ``invalid_client``."""

    check: Callable[[str], str | None]
    expires_in: int = 300
    refusals: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per response: headers and body in separate small writes meet delayed ACKs.
            wbufsize = 65536
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                outer.forms.append(form)
                problem: str | None
                if form.get("client_assertion_type") != JWT_BEARER or "client_id" not in form:
                    problem = "not an RFC 7523 client assertion request"
                else:
                    problem = outer.check(form.get("client_assertion", ""))
                if problem is None:
                    outer.accepted.append(form["client_assertion"])
                    status = 200
                    body: dict[str, Any] = {
                        "access_token": f"at-{secrets.token_hex(8)}",
                        "token_type": "Bearer",
                        "expires_in": outer.expires_in,
                    }
                else:
                    outer.refusals.append(problem)
                    status = 401
                    body = {"error": "invalid_client", "error_description": "client authentication failed"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/oauth2/token"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)


class Rewriter(threading.Thread):
    """Rewrites the token file with a new token every ``interval()`` seconds until stopped."""

    def __init__(
        self, write: Callable[[str], None], rotation: Rotation, interval: Callable[[], float], lifetime: float
    ) -> None:
        super().__init__(daemon=True)
        self.write, self.rotation, self.interval, self.lifetime = write, rotation, interval, lifetime
        self.stop = threading.Event()

    def rewrite(self) -> None:
        self.rotation.publish(self.write, platform_token(time.time() + self.lifetime))

    def run(self) -> None:
        while not self.stop.wait(self.interval()):
            self.rewrite()
