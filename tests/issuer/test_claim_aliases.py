"""Okta/Entra-style claim aliases (scp, cid, azp): off by default, on globally or per client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2s.clock import FakeClock
from s2s.issuer import Client, IssuerSettings, Minter
from s2s.keys import LocalSigner
from tests.issuer.cert_helpers import clients_add
from tests.issuer.helpers import AUDIENCE, ISSUER, SECRET_HASH

ALIASES = {"scp", "cid", "azp"}


def claims(global_flag: bool, client_flag: bool | None) -> dict[str, object]:
    client = Client(
        client_id="svc",
        audiences=(AUDIENCE,),
        scopes=("orders:read", "orders:write"),
        claim_aliases=client_flag,
        secret_hash=SECRET_HASH,
    )
    minter = Minter(ISSUER, LocalSigner(), clock=FakeClock(1_700_000_000), claim_aliases=global_flag)
    return minter.claims(client, AUDIENCE, client.scopes, 60)


@pytest.mark.parametrize(
    ("global_flag", "client_flag", "expected"),
    [(False, None, False), (True, None, True), (True, False, False), (False, True, True)],
)
def test_aliases(global_flag: bool, client_flag: bool | None, expected: bool) -> None:
    out = claims(global_flag, client_flag)
    # RFC 9068's own claims are always there.
    assert out["client_id"] == "svc" and out["scope"] == "orders:read orders:write"
    if expected:
        assert out["scp"] == ["orders:read", "orders:write"] and out["cid"] == out["azp"] == "svc"
    else:
        assert not ALIASES & set(out)


def test_settings_and_cli(tmp_path: Path) -> None:
    assert IssuerSettings.from_env(environ={}).claim_aliases is False
    assert IssuerSettings.from_env(environ={"S2S_CLAIM_ALIASES": "true"}).claim_aliases is True
    result = clients_add(
        tmp_path / "clients.json", "svc", "--audience", AUDIENCE, "--claim-aliases", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["claim_aliases"] is True
    stored = json.loads((tmp_path / "clients.json").read_text())
    assert "claim_aliases" in json.dumps(stored)
