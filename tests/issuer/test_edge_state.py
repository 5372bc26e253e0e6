"""Single use of an assertion survives a restart and is shared by processes on one host
(issue 9, item 7): the default state is SQLite beside the key store, through real ``s2s serve``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.issuer.edge_support import AUD, basic, edge_env, write_clients
from tests.issuer.helpers import make_assertion, make_pkj
from tests.support import running_issuer

SHARED = "http://issuer.edge.test"  # one public issuer URL for every process (the assertion's aud)


def send(url: str, assertion: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    return httpx.post(f"{url}/oauth2/token", data=form, trust_env=False, timeout=30)


def test_a_used_assertion_is_refused_after_a_restart(tmp_path: Path) -> None:
    pkj = make_pkj("pkj-victim")
    write_clients(tmp_path / "keys" / "clients.json", (), pkj)
    env = edge_env(tmp_path)  # S2S_STATE unset: the default
    assertion = make_assertion(pkj, now=time.time(), aud=f"{SHARED}/oauth2/token")
    with running_issuer(env, tmp_path, issuer_url=SHARED) as issuer:
        assert send(issuer.url, assertion).status_code == 200
    state = tmp_path / "keys" / "state.sqlite3"
    assert state.stat().st_mode & 0o777 == 0o600
    with running_issuer(env, tmp_path, issuer_url=SHARED) as issuer:
        again = send(issuer.url, assertion)
        assert again.status_code == 401 and again.json()["error"] == "invalid_client"
        assert "already used" in issuer.log.read_text()
        assert assertion not in again.text and assertion not in issuer.log.read_text()


def test_two_processes_share_replay_and_rate_state(tmp_path: Path) -> None:
    pkj = make_pkj("pkj-victim")
    secrets = write_clients(tmp_path / "keys" / "clients.json", ("svc",), pkj)
    env = edge_env(tmp_path, rate_limit="0.01", rate_burst="3")
    with (
        running_issuer(env, tmp_path, issuer_url=SHARED) as a,
        running_issuer(env, tmp_path, issuer_url=SHARED) as b,
    ):
        assertion = make_assertion(pkj, now=time.time(), aud=f"{SHARED}/oauth2/token")
        assert send(a.url, assertion).status_code == 200
        assert send(b.url, assertion).status_code == 401  # the other process saw it used
        auth = {"Authorization": basic("svc", secrets["svc"])}
        form = {"grant_type": "client_credentials", "audience": AUD}
        statuses = [
            httpx.post(f"{u}/oauth2/token", data=form, headers=auth, trust_env=False, timeout=30).status_code
            for u in (a.url, b.url, a.url, b.url)
        ]
        assert statuses == [200, 200, 200, 429]  # one budget of 3 for both processes
