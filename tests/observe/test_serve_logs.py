"""A real `s2s serve` with S2S_LOG_FORMAT=json and S2S_AUDIT_LOG: its s2s lines are JSON objects,
and the audit file holds the token it issued (and nothing of the secret or the token)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from tests.support import running_issuer


def test_json_logs_and_audit_file_of_a_running_issuer(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    env |= {"S2S_LOG_FORMAT": "json", "S2S_AUDIT_LOG": str(audit)}
    with running_issuer(env, tmp_path, "--demo") as issuer:
        log = issuer.log.read_text()
        secret = next(x for x in log.splitlines() if "client_secret=" in x).split("client_secret=")[1].strip()
        form = {"grant_type": "client_credentials", "audience": "https://api.example.internal"}
        answer = httpx.post(
            issuer.token_endpoint, data=form, auth=("demo", secret), timeout=30, trust_env=False
        )
        assert answer.status_code == 200
        wrong = httpx.post(
            issuer.token_endpoint, data=form, auth=("demo", "x" * 40), timeout=30, trust_env=False
        )
        assert wrong.status_code == 401
        token = answer.json()["access_token"]
    lines = issuer.log.read_text().splitlines()
    s2s_lines = [json.loads(line) for line in lines if line.startswith('{"ts"')]
    loggers = {line["logger"] for line in s2s_lines}
    assert "s2s.audit" in loggers and "s2s.issuer.keys" in loggers  # the key manager's start line
    assert any(
        line["message"].startswith("client authentication failed") for line in s2s_lines if "message" in line
    )
    # Every line an s2s logger wrote is a JSON object (uvicorn's own lines keep its format).
    assert not [line for line in lines if (" s2s." in line or line.startswith(("INFO s2s", "WARNING s2s")))]
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert audit.stat().st_mode & 0o777 == 0o600
    kinds = [e["event"] for e in events]
    assert "token.issued" in kinds and "client.auth_failed" in kinds
    issued = next(e for e in events if e["event"] == "token.issued")
    assert issued["client_id"] == "demo" and issued["source"] == "127.0.0.1"
    text = issuer.log.read_text() + audit.read_text()
    assert token not in text and token.split(".")[2] not in text and "x" * 40 not in text
