"""A scripted token endpoint for httpx.MockTransport."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx

TOKEN_URL = "https://issuer.test/oauth2/token"
SECRET = "cl13nt-S3cret-value-that-must-not-leak-0123456789"

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeTokenEndpoint:
    """Answers token requests: scripted replies first, then fresh tokens ``tok-1``, ``tok-2`` ..."""

    expires_in: float = 300
    script: list[Reply] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    issued: int = 0
    before: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            reply = self.script.pop(0) if self.script else None
        if self.before is not None:
            self.before()
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        if reply is not None:
            return reply(request)
        return self.token(request)

    def token(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.issued += 1
            n = self.issued
        form = parse_qs(request.content.decode())
        body = {"access_token": f"tok-{n}", "token_type": "Bearer", "expires_in": self.expires_in}
        if "scope" in form:
            body["scope"] = form["scope"][0]
        return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})

    @property
    def count(self) -> int:
        return len(self.requests)


def oauth_error(status: int, error: str, description: str = "", **headers: str) -> httpx.Response:
    body = {"error": error, "error_description": description or error}
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
    )


def logged(caplog_records: list[object]) -> str:
    import logging

    return "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog_records if isinstance(r, logging.LogRecord)
    )
