"""OpenTelemetry spans, read back with the SDK's in-memory exporter (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
from litestar import Litestar, get
from litestar.testing import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from s2s.client import TokenClient
from s2s.clock import FakeClock
from s2s.issuer import InMemoryClientRegistry
from s2s.keys import KeyState, generate_key
from s2s.litestar import PrincipalDep, S2SAuthPlugin, requires_scopes
from s2s.verify import VerifierConfig
from tests.issuer.helpers import AUDIENCE, ISSUER, SECRET, basic
from tests.observe.conftest import make_app
from tests.observe.test_verifier_client_metrics import jwks_client, mint

CC = {"grant_type": "client_credentials"}


def spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def parent_of(span: ReadableSpan, exporter: InMemorySpanExporter) -> str | None:
    if span.parent is None:
        return None
    return next(s.name for s in exporter.get_finished_spans() if s.context.span_id == span.parent.span_id)


def test_issuance_spans_client_auth_and_signing(
    exporter: InMemorySpanExporter, registry: InMemoryClientRegistry, clock: FakeClock
) -> None:
    app = make_app(registry, clock)
    with TestClient(app, base_url=ISSUER) as tc:
        assert (
            tc.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", SECRET)}).status_code
            == 200
        )
        assert (
            tc.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", "nope")}).status_code
            == 401
        )
    ok, refused = spans(exporter, "s2s.token")
    assert ok.attributes is not None and refused.attributes is not None
    assert ok.attributes["s2s.client_id"] == "svc" and ok.attributes["s2s.audience"] == AUDIENCE
    kid = app.state.s2s_issuer.keys.current.kid
    assert ok.attributes["s2s.kid"] == kid
    sign = spans(exporter, "s2s.sign")
    assert len(sign) == 1 and sign[0].attributes == {"kid": kid, "alg": "ES256"}
    assert parent_of(sign[0], exporter) == "s2s.token"
    auth = spans(exporter, "s2s.client_auth")
    assert len(auth) == 2 and all(parent_of(s, exporter) == "s2s.token" for s in auth)
    assert auth[1].status.status_code is StatusCode.ERROR and auth[1].status.description == "InvalidClient"
    assert refused.attributes["s2s.error"] == "invalid_client"
    assert refused.attributes["s2s.client_auth.method"] == "client_secret"
    assert refused.attributes["s2s.client_auth.reason"] == "wrong_secret"


def test_jwks_fetch_verification_and_guard_spans(exporter: InMemorySpanExporter, clock: FakeClock) -> None:
    key = generate_key("ES256", now=clock.now(), state=KeyState.CURRENT)

    @get("/orders", guards=[requires_scopes("orders:write")])
    async def orders(principal: PrincipalDep) -> dict[str, str]:
        return {"subject": principal.subject}

    iss, aud = "https://issuer.test", "orders-api"
    plugin = S2SAuthPlugin(
        VerifierConfig.for_s2s(iss, aud), http_client=jwks_client(key, [False]), clock=clock
    )
    app = Litestar([orders], plugins=[plugin], logging_config=None)
    with TestClient(app) as tc:
        token = mint(key, clock, scope="orders:read")
        assert tc.get("/orders", headers={"Authorization": f"Bearer {token}"}).status_code == 403
        assert tc.get("/orders", headers={"Authorization": "Bearer a.b.c"}).status_code == 401
    fetch = spans(exporter, "s2s.jwks.fetch")
    assert fetch and fetch[0].attributes == {"s2s.issuer": iss}
    assert fetch[0].status.status_code is not StatusCode.ERROR
    verify = spans(exporter, "s2s.verify")
    assert [dict(s.attributes or {}) for s in verify] == [
        {"s2s.issuer": iss, "s2s.result": "ok"},
        {"s2s.issuer": "-", "s2s.result": "MalformedToken", "error.type": "MalformedToken"},
    ]
    assert verify[1].status.status_code is StatusCode.ERROR
    (guard,) = spans(exporter, "s2s.guard")
    assert guard.attributes == {"s2s.requirement": "requires_scopes('orders:write')", "s2s.decision": "deny"}


def test_token_client_request_span(exporter: InMemorySpanExporter, clock: FakeClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"access_token": "opaque", "token_type": "Bearer", "expires_in": 3600}
        return httpx.Response(200, content=json.dumps(body))

    with TokenClient(
        "https://issuer.test/oauth2/token",
        client_id="caller",
        client_secret="caller-secret-0123456789",
        transport=httpx.MockTransport(handler),
        clock=clock,
    ) as client:
        client.get_token("orders-api")
        client.get_token("orders-api")  # from the cache: no request, no span
    (span,) = spans(exporter, "s2s.client.token_request")
    assert span.attributes == {"s2s.audience": "orders-api", "s2s.client_id": "caller", "s2s.outcome": "ok"}


def test_without_tracing_nothing_of_opentelemetry_is_imported() -> None:
    code = (
        "import sys\n"
        "import s2s.observe, s2s.issuer, s2s.verify, s2s.client, s2s.litestar.issuer\n"
        "from s2s.observe import ObserveSettings, setup_from_env\n"
        "setup_from_env(ObserveSettings())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_s2s_otel_enables_the_spans_and_a_missing_extra_is_one_clear_error() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "from s2s.observe import ObserveSettings, setup_from_env\n"
        "try:\n"
        "    setup_from_env(ObserveSettings(otel=True))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "MissingExtra opentelemetry-api is not installed: pip install 's2s[otel]'"
