"""Fixtures for the Litestar plugin tests: a signing key, a JWKS served by a counting MockTransport,
a token minter, and a small app whose handlers count their calls (so a test proves a refused
request never reached its handler)."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, WebSocket, delete, get, websocket
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.keys import KeyState, LocalSigner, SigningKey, generate_key
from s2s.litestar import PrincipalDep, S2SAuthPlugin, requires_roles, requires_scopes
from s2s.verify import Principal, VerifierConfig

ISSUER = "https://issuer.test"
AUDIENCE = "orders-api"
REALM = "orders"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"


@dataclass
class JwksServer:
    """Serves the JWKS of ``keys`` over an httpx.MockTransport and counts what it was asked."""

    keys: list[SigningKey]
    requests: Counter[str] = field(default_factory=Counter)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests[str(request.url)] += 1
        if str(request.url) == JWKS_URL:
            body = {"keys": [k.public_jwk_entry() for k in self.keys]}
            return httpx.Response(200, json=body, headers={"Cache-Control": "max-age=600"})
        return httpx.Response(404)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


@pytest.fixture
def key(clock: FakeClock) -> SigningKey:
    return generate_key("ES256", now=clock.now(), state=KeyState.CURRENT)


@pytest.fixture
def other_key(clock: FakeClock) -> SigningKey:
    """A key the issuer never published."""
    return generate_key("ES256", now=clock.now(), state=KeyState.CURRENT)


@pytest.fixture
def jwks(key: SigningKey) -> JwksServer:
    return JwksServer([key])


Mint = Callable[..., str]


@pytest.fixture
def mint(key: SigningKey, clock: FakeClock) -> Mint:
    signer = LocalSigner()

    def mint(
        *, signing_key: SigningKey | None = None, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        now = int(clock.now())
        body: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "billing-service",
            "aud": AUDIENCE,
            "client_id": "billing-service",
            "iat": now,
            "exp": now + 300,
            "jti": f"jti-{now}-{len(claims)}",
            "scope": "orders:read",
        }
        body.update(claims)
        for name in [k for k, v in body.items() if v is None]:
            del body[name]
        return signer.sign(signing_key or key, {"typ": "at+jwt", **(header or {})}, body)

    return mint


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Harness:
    app: Litestar
    plugin: S2SAuthPlugin
    calls: Counter[str]
    http_client: httpx.AsyncClient


def build_app(plugin: S2SAuthPlugin, calls: Counter[str], **app_options: Any) -> Litestar:
    @get("/orders", guards=[requires_scopes("orders:read")])
    async def list_orders(principal: PrincipalDep) -> dict[str, Any]:
        calls["orders"] += 1
        return {"subject": principal.subject, "orders": [1, 2]}

    @get("/whoami")
    async def whoami(request: Request[Principal, Any, Any], principal: PrincipalDep) -> dict[str, Any]:
        calls["whoami"] += 1
        return {
            "same": request.user is principal,
            "subject": request.user.subject,
            "client_id": principal.client_id,
            "scopes": sorted(principal.scopes),
            "auth_sub": request.auth["sub"],
        }

    @delete("/orders/{order_id:int}", guards=[requires_roles("admin")])
    async def delete_order(order_id: int) -> None:
        calls["delete"] += 1

    @get("/health")
    async def health() -> dict[str, str]:
        calls["health"] += 1
        return {"status": "ok"}

    @get("/healthz-evil")
    async def healthz_evil() -> dict[str, str]:
        calls["healthz-evil"] += 1
        return {"status": "should need a token"}

    @get("/public", exclude_from_auth=True)
    async def public() -> dict[str, str]:
        calls["public"] += 1
        return {"status": "public"}

    @get("/public/principal", exclude_from_auth=True)
    async def public_principal(principal: PrincipalDep) -> dict[str, str]:
        calls["public-principal"] += 1
        return {"subject": principal.subject}

    @get("/public/guarded", exclude_from_auth=True, guards=[requires_scopes("orders:read")])
    async def public_guarded() -> dict[str, str]:
        calls["public-guarded"] += 1
        return {"status": "guarded"}

    @websocket("/ws", guards=[requires_scopes("orders:read")])
    async def ws(socket: WebSocket[Principal, Any, Any], principal: PrincipalDep) -> None:
        calls["ws"] += 1
        await socket.accept()
        await socket.send_json({"subject": principal.subject, "user": socket.user.subject})
        await socket.close()

    # Litestar's default logging config replaces the root handlers, and with them pytest's capture.
    app_options.setdefault("logging_config", None)
    return Litestar(
        route_handlers=[
            list_orders,
            whoami,
            delete_order,
            health,
            healthz_evil,
            public,
            public_principal,
            public_guarded,
            ws,
        ],
        plugins=[plugin],
        **app_options,
    )


@pytest.fixture
def harness(jwks: JwksServer, clock: FakeClock) -> Harness:
    calls: Counter[str] = Counter()
    http_client = jwks.client()
    config = VerifierConfig.for_s2s(ISSUER, AUDIENCE)
    plugin = S2SAuthPlugin(config, exclude=["^/health$"], realm=REALM, http_client=http_client, clock=clock)
    return Harness(build_app(plugin, calls), plugin, calls, http_client)


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient[Litestar]]:
    with TestClient(harness.app) as client:
        yield client


def close_code(client: TestClient[Litestar], path: str = "/ws", **kwargs: Any) -> tuple[int, str]:
    """The close code and reason of a WebSocket the server refuses."""
    from litestar.exceptions import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(path, **kwargs) as ws:
        ws.receive_json()
    return info.value.code, str(info.value.detail)
