"""The audit trail on ``s2s.audit`` (one JSON line per event, schema v1) and S2S_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient

from s2s.cli import main
from s2s.clock import FakeClock
from s2s.issuer import InMemoryClientRegistry
from s2s.keys import RotationPolicy
from s2s.observe import AUDIT_LOGGER, AuditLog, audit_file, configure_logging
from s2s.observe._audit import AUTH_FAILED_PER_SECOND, RATE_LIMITED_PER_SECOND, _audit_files
from tests.issuer.helpers import AUDIENCE, ISSUER, SECRET, basic
from tests.observe.conftest import make_app

CC = {"grant_type": "client_credentials"}
COMMON = {"v", "ts", "event", "host"}
SCHEMA: dict[str, set[str]] = {
    "token.issued": {"client_id", "audience", "scopes", "jti", "kid", "exp", "source"},
    "client.auth_failed": {"client_id", "method", "reason", "source", "suppressed"},
    "token.rate_limited": {"client_id", "budget", "source", "suppressed"},
    "key.generated": {"kid", "alg", "who"},
    "key.rotated": {"kid", "alg", "who"},
    "key.revoked": {"kid", "alg", "who"},
    "key.retired": {"kid", "alg", "who"},
    "key.pruned": {"kid", "alg", "who"},
    "client.registered": {"client_id", "who"},
    "client.changed": {"client_id", "who"},
    "client.removed": {"client_id", "who"},
    "client.secret_rotated": {"client_id", "who"},
}


def audit_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Every audit record, parsed; each must be one JSON line with exactly its schema's fields."""
    events = []
    for record in caplog.records:
        if record.name != AUDIT_LOGGER:
            continue
        line = record.getMessage()
        assert "\n" not in line
        event = json.loads(line)
        assert set(event) == COMMON | SCHEMA[event["event"]], event
        assert event["v"] == 1 and event["ts"].endswith("Z") and event["host"]
        events.append(event)
    return events


def test_token_endpoint_events(
    registry: InMemoryClientRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    app: Litestar = make_app(registry, clock, rate=1, burst=1)
    with TestClient(app, base_url=ISSUER) as tc:
        caplog.clear()
        ok = tc.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", SECRET)})
        assert ok.status_code == 200
        assert (
            tc.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", SECRET)}).status_code
            == 429
        )
        wrong = tc.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", "not-the-secret")})
        assert wrong.status_code == 401
        assert tc.post("/oauth2/token", data=CC, headers={"Authorization": "Basic !!"}).status_code == 401
    events = audit_events(caplog)
    kinds = [e["event"] for e in events]
    assert kinds == ["token.issued", "token.rate_limited", "client.auth_failed", "client.auth_failed"]
    issued, limited, failed, malformed = events
    claims = json.loads(
        __import__("base64").urlsafe_b64decode(ok.json()["access_token"].split(".")[1] + "==")
    )
    assert issued["client_id"] == "svc" and issued["audience"] == AUDIENCE
    assert (
        issued["jti"] == claims["jti"]
        and issued["exp"] == claims["exp"]
        and issued["scopes"] == ["orders:read"]
    )
    assert issued["kid"] and issued["source"] == "testclient"
    assert limited["budget"] == "issuance" and limited["client_id"] == "svc"
    assert failed == {
        **failed,
        "client_id": "svc",
        "method": "client_secret",
        "reason": "client_secret: wrong secret",
    }
    assert malformed["method"] == "none" and malformed["reason"] == "malformed Basic credentials"
    assert "not-the-secret" not in caplog.text and SECRET not in caplog.text


def test_key_and_client_events_from_the_cli(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    clock = FakeClock(1_800_000_000)
    store = f"file://{tmp_path / 'keys'}"
    registry = f"file://{tmp_path / 'clients.json'}"
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(main, list(args), obj={"clock": clock})
        assert result.exit_code == 0, result.output
        return result.output

    cli("keys", "init", "--store", store)
    clock.advance(RotationPolicy().publish_lead)
    cli("keys", "rotate", "--store", store)
    events = audit_events(caplog)
    generated = [e for e in events if e["event"] == "key.generated"]
    assert len(generated) == 3 and all(e["who"] == "cli" and e["alg"] == "ES256" for e in generated)
    rotated = [e for e in events if e["event"] == "key.rotated"]
    assert [e["kid"] for e in rotated][-1] == generated[1]["kid"]  # init's next key became current
    cli("keys", "revoke", generated[0]["kid"], "--store", store)
    clock.advance(RotationPolicy().retention + 1)
    cli("keys", "prune", "--store", store)
    events = audit_events(caplog)
    assert {"event": "key.revoked", "kid": generated[0]["kid"]}.items() <= next(
        e for e in events if e["event"] == "key.revoked"
    ).items()
    assert generated[0]["kid"] in {e["kid"] for e in events if e["event"] == "key.pruned"}

    caplog.clear()
    cli("clients", "add", "orders", "--audience", AUDIENCE, "--registry", registry)
    cli("clients", "remove", "orders", "--registry", registry)
    assert [(e["event"], e["client_id"], e["who"]) for e in audit_events(caplog)] == [
        ("client.registered", "orders", "cli"),
        ("client.removed", "orders", "cli"),
    ]


def test_scheduled_rotation_is_audited_as_the_schedule(
    registry: InMemoryClientRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    app = make_app(registry, clock)
    with TestClient(app, base_url=ISSUER):
        keys = app.state.s2s_issuer.keys
        caplog.clear()
        clock.advance(RotationPolicy().rotate_every + RotationPolicy().publish_lead)
        assert keys.refresh()
    events = audit_events(caplog)
    assert {e["event"] for e in events} >= {"key.rotated", "key.generated"}
    assert all(e["who"] == "schedule" for e in events)


def test_every_schema_event_is_written_as_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    audit = AuditLog(clock=FakeClock(1_800_000_000), host="host-1")
    audit.token_issued("svc", AUDIENCE, ("a",), jti="j", kid="k", expires_at=1, source="10.0.0.1")
    audit.client_auth_failed(
        "x" * 500, "private_key_jwt", "private_key_jwt: client assertion has expired", None
    )
    audit.rate_limited("svc", "failures", "10.0.0.1")
    for action in ("generated", "rotated", "revoked", "retired", "pruned"):
        audit.key_changed(action, "kid-1", "cli", "ES256")
    for action in ("registered", "changed", "removed", "secret_rotated"):
        audit.client_changed(action, "svc", "cli")
    events = audit_events(caplog)
    assert {e["event"] for e in events} == set(SCHEMA)
    assert events[0]["ts"] == "2027-01-15T08:00:00.000Z" and events[0]["host"] == "host-1"
    assert len(events[1]["client_id"]) == 128  # a claimed id is cut


def test_a_flood_of_rate_limited_requests_writes_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    clock = FakeClock(1_800_000_000)
    audit = AuditLog(clock=clock, host="h")
    for n in range(1000):
        audit.rate_limited(f"attacker-{n}", "failures", "10.0.0.9")
        audit.client_auth_failed("", "none", "malformed Basic credentials", "10.0.0.9")
    events = audit_events(caplog)
    assert [e["event"] for e in events].count("token.rate_limited") == RATE_LIMITED_PER_SECOND
    assert [e["event"] for e in events].count("client.auth_failed") == AUTH_FAILED_PER_SECOND
    clock.advance(1)
    audit.rate_limited("svc", "issuance", "10.0.0.1")
    audit.client_auth_failed("svc", "client_secret", "client_secret: wrong secret", "10.0.0.1")
    limited, failed = audit_events(caplog)[-2:]
    assert limited["client_id"] == "svc" and limited["suppressed"] == 1000 - RATE_LIMITED_PER_SECOND
    assert failed["client_id"] == "svc" and failed["suppressed"] == 1000 - AUTH_FAILED_PER_SECOND


def test_json_log_format_makes_every_s2s_log_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = []
    try:
        configure_logging(logging.INFO, environ={"S2S_LOG_FORMAT": "json"})
        logging.getLogger("s2s.issuer.keys").warning("keyset reload from %s failed", "memory://x")
        AuditLog(host="h").client_changed("removed", "svc", "cli")
        try:
            raise ValueError("secret-in-message")
        except ValueError:
            logging.getLogger("s2s.test").exception("failed")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers, root.level = saved
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "s2s.issuer.keys"
    assert lines[0]["message"] == "keyset reload from memory://x failed"
    assert lines[1]["event"] == "client.removed" and lines[1]["logger"] == AUDIT_LOGGER
    assert lines[2]["exc_type"] == "ValueError" and "secret-in-message" not in json.dumps(lines[2])
    with pytest.raises(Exception, match="S2S_LOG_FORMAT"):
        configure_logging(environ={"S2S_LOG_FORMAT": "xml"})


def test_audit_log_file_for_cli_processes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    assert audit_file({"S2S_AUDIT_LOG": str(path)}) == str(path)
    AuditLog(host="h").key_changed("revoked", "kid-9", "cli", "ES256")
    assert path.stat().st_mode & 0o777 == 0o600
    line = json.loads(path.read_text().splitlines()[-1])
    assert line["event"] == "key.revoked" and line["kid"] == "kid-9"
    audit = logging.getLogger(AUDIT_LOGGER)
    for handler in [h for h in audit.handlers if getattr(h, "baseFilename", None) == str(path)]:
        audit.removeHandler(handler)
        handler.close()
    _audit_files.pop(str(path), None)


def test_the_log_setup_reads_only_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # A metrics token kept in Secrets Manager is the metrics endpoint's business: setting up the
    # log (every CLI command, every serve) must not resolve it, nor check other settings.
    from s2s.errors import ConfigError
    from s2s.observe._audit import log_format

    calls: list[str] = []
    monkeypatch.setattr("s2s._env.EnvReader._resolve", lambda self, name, raw: calls.append(name) or "x")
    environ = {
        "S2S_LOG_FORMAT": "json",
        "S2S_METRICS_TOKEN": "aws-sm://metrics#token",
        "S2S_METRICS_PORT": "0",
    }
    assert log_format(environ) == "json"
    assert audit_file(environ) is None
    assert calls == []
    with pytest.raises(ConfigError, match="S2S_LOG_FORMAT"):
        log_format({"S2S_LOG_FORMAT": "xml"})
