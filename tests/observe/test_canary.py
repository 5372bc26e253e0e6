"""No token, secret, client assertion or private key material in any output (issue 14).

Unique canary values go through issuance (client_secret and private_key_jwt), failed
authentication, replay, verification (accepted and refused tokens) and the CLI; then every
output is searched: every log record (audit included, as text and as JSON lines), the issuer's
and the verifier's /metrics, every span's name, attributes, events and status.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar, get
from litestar.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from s2s.cli import main
from s2s.clock import FakeClock
from s2s.issuer import Client, InMemoryClientRegistry, hash_secret
from s2s.keys import FileKeyStore
from s2s.litestar import PrincipalDep, S2SAuthPlugin, requires_scopes
from s2s.observe import HUB, Fanout, JsonFormatter
from s2s.observe.prometheus import PrometheusObserver
from s2s.verify import TokenVerifier, VerifierConfig
from tests.issuer.helpers import AUDIENCE, ISSUER, basic, make_assertion, make_pkj
from tests.observe.conftest import make_app
from tests.observe.helpers import scrape

CANARY = f"canary{uuid.uuid4().hex}"
SECRET = f"{CANARY}-client-secret-value"
WRONG = f"{CANARY}-wrong-secret-value"
CC = {"grant_type": "client_credentials"}
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64_int(value: int, size: int = 32) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()


def pieces(jws: str) -> list[str]:
    """A compact JWS and the parts that would betray it: payload and signature."""
    parts = jws.split(".")
    return [jws, parts[1], parts[2]] if len(parts) == 3 else [jws]


def span_text(exporter: InMemorySpanExporter) -> str:
    out = []
    for span in exporter.get_finished_spans():
        out.append(span.name)
        out.append(json.dumps(dict(span.attributes or {}), default=str))
        out.extend(f"{e.name} {json.dumps(dict(e.attributes or {}), default=str)}" for e in span.events)
        out.append(str(span.status.description))
    return "\n".join(out)


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    formatter = JsonFormatter()
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        lines.append(formatter.format(record))
        lines.append(json.dumps(getattr(record, "s2s_event", None), default=str))
    return "\n".join(lines)


def test_no_canary_in_logs_metrics_spans_or_cli(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture, exporter: InMemorySpanExporter
) -> None:
    caplog.set_level(logging.DEBUG)
    pkj = make_pkj("pkj")
    registry = InMemoryClientRegistry(
        [
            Client(
                client_id="svc",
                audiences=(AUDIENCE,),
                scopes=("orders:read",),
                secret_hash=hash_secret(SECRET),
            ),
            Client(client_id="pkj", audiences=(AUDIENCE,), jwks=(pkj.public_jwk,)),
        ]
    )
    app = make_app(registry, clock)
    assertion = make_assertion(pkj, now=clock.now(), canary=CANARY)
    bad_assertion = f"{CANARY}.bad-assertion.{CANARY}"
    canaries: list[str] = [SECRET, WRONG, CANARY, *pieces(assertion)]
    canaries.append(b64_int(pkj.private_key.private_numbers().private_value))
    tokens: list[str] = []
    with TestClient(app, base_url=ISSUER) as tc:
        ok = tc.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", SECRET)})
        assert ok.status_code == 200
        tokens.append(ok.json()["access_token"])
        assert (
            tc.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", WRONG)}).status_code
            == 401
        )
        form = {**CC, "client_id": "pkj", "client_assertion_type": JWT_BEARER}
        ok = tc.post("/oauth2/token", data={**form, "client_assertion": assertion})
        assert ok.status_code == 200
        tokens.append(ok.json()["access_token"])
        replay = tc.post("/oauth2/token", data={**form, "client_assertion": assertion})
        assert replay.status_code == 401
        assert tc.post("/oauth2/token", data={**form, "client_assertion": bad_assertion}).status_code == 401
        # A secret in the wrong place (the form) and in the scope: refused, never echoed.
        odd = {**CC, "client_id": "svc", "client_secret": WRONG, "scope": f"{CANARY}:read"}
        assert tc.post("/oauth2/token", data=odd).status_code in (400, 401)
        issuer_metrics = scrape(tc).text
        runtime = app.state.s2s_issuer
        for key in runtime.keys.keyset:
            assert key.private_jwk is not None
            canaries.append(str(key.private_jwk["d"]))
        jwks = tc.get("/.well-known/jwks.json").json()

    # Verification: accepted (then cached), refused by a guard, forged, and garbage with a canary.
    @get("/orders", guards=[requires_scopes("orders:write")])
    async def orders(principal: PrincipalDep) -> dict[str, str]:
        return {"subject": principal.subject}

    @get("/read")
    async def read(principal: PrincipalDep) -> dict[str, str]:
        return {"subject": principal.subject}

    def serve_jwks(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=jwks, headers={"Cache-Control": "max-age=600"})

    verifier_metrics = PrometheusObserver()
    verifier = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(serve_jwks)),
        clock=clock,
        observer=Fanout([HUB, verifier_metrics]),  # the spans too
    )
    plugin_app = Litestar(
        [orders, read],
        plugins=[S2SAuthPlugin(verifier)],
        logging_config=None,
    )
    forged_key = ec.generate_private_key(ec.SECP256R1())
    canaries.append(b64_int(forged_key.private_numbers().private_value))
    header, payload, _ = tokens[0].split(".")
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(CANARY.encode() * 2).rstrip(b'=').decode()}"
    with TestClient(plugin_app) as tc:
        for token in tokens:
            for _ in range(3):
                assert tc.get("/read", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert tc.get("/orders", headers={"Authorization": f"Bearer {token}"}).status_code == 403
        assert tc.get("/read", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
        assert tc.get("/read", headers={"Authorization": f"Bearer {CANARY}"}).status_code == 401
    canaries.extend(piece for token in [*tokens, forged] for piece in pieces(token))
    plugin_metrics = verifier_metrics.render()[0].decode()

    # The CLI: keys and clients (the new secret is printed once, by design, on stdout only).
    runner = CliRunner()
    store = f"file://{tmp_path / 'keys'}"
    cli_out = []
    for args in (
        ["keys", "init", "--store", store],
        ["keys", "list", "--store", store, "--json"],
        ["jwks", "--store", store],
        [
            "clients",
            "add",
            "cli-client",
            "--audience",
            AUDIENCE,
            "--registry",
            f"file://{tmp_path / 'c.json'}",
        ],
        ["clients", "list", "--registry", f"file://{tmp_path / 'c.json'}"],
    ):
        result = runner.invoke(main, args, obj={"clock": clock})
        assert result.exit_code == 0, result.output
        shown = result.output
        if args[:2] == ["clients", "add"]:
            secret = next(line for line in shown.splitlines() if line.startswith("client_secret: ")).split(
                ": "
            )[1]
            canaries.append(secret)
            shown = shown.replace(secret, "")  # the one place a secret is meant to appear
        cli_out.append(shown)
    for key in FileKeyStore(tmp_path / "keys").load()[0]:
        assert key.private_jwk is not None
        canaries.append(str(key.private_jwk["d"]))

    outputs = {
        "logs": log_text(caplog),
        "issuer /metrics": issuer_metrics,
        "verifier metrics": plugin_metrics,
        "spans": span_text(exporter),
        "cli": "\n".join(cli_out),
    }
    # The flows really ran and were observed (so an empty output cannot pass).
    assert '"event":"token.issued"' in outputs["logs"] and '"event":"client.auth_failed"' in outputs["logs"]
    assert "s2s_issuer_tokens_issued_total" in issuer_metrics and 'result="ok"' in plugin_metrics
    for name in ("s2s.token", "s2s.client_auth", "s2s.sign", "s2s.jwks.fetch", "s2s.verify", "s2s.guard"):
        assert name in outputs["spans"]
    for where, text in outputs.items():
        for canary in canaries:
            assert canary not in text, f"a canary ({canary[:12]}...) leaked into {where}"
