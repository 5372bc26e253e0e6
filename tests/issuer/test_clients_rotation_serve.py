"""Secret rotation against a real ``s2s serve``: the CLI changes the file registry the running
issuer reads; old and new secrets both work during the grace, only the new one after it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import running_issuer, s2s_executable

AUDIENCE = "https://api.example.internal"
GRACE = 15.0  # long enough for two CLI runs and a reload on a busy machine
# Around not_after, a request may be decided on either side of it (the two clocks are read at
# slightly different moments): no claim is made inside this window.
TOLERANCE = 0.75


def _cli(env: dict[str, str], workdir: Path, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [str(s2s_executable()), *args, "--json"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    data: dict[str, object] = json.loads(out)
    return data


def _status(endpoint: str, secret: str, client_id: str = "svc") -> int:
    auth = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = httpx.post(
        endpoint, data={"grant_type": "client_credentials"}, headers={"Authorization": auth},
        timeout=10, trust_env=False,
    )  # fmt: skip
    return response.status_code


def test_old_and_new_secret_during_the_grace_only_the_new_after(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    env.update(
        S2S_KEYSTORE=f"file://{tmp_path / 'keys'}", S2S_CLIENTS=f"file://{tmp_path / 'keys' / 'clients.json'}"
    )
    old = str(_cli(env, tmp_path, "clients", "add", "svc", "--audience", AUDIENCE)["client_secret"])
    with running_issuer(env, tmp_path) as issuer:
        assert _status(issuer.token_endpoint, old) == 200
        rotated = _cli(env, tmp_path, "clients", "rotate-secret", "svc", "--grace", f"{GRACE:g}s")
        new = str(rotated["client_secret"])
        (not_after,) = rotated["previous_secrets_not_after"]  # type: ignore[misc]
        assert isinstance(not_after, float)
        # The issuer reads the file again within its reload interval (2 s). Wait for that with a
        # client registered after the rotation: failed tries charge the probe's failure budget,
        # not svc's (10 failures per client and address, then one per 2 s: a busy machine would
        # otherwise spend svc's budget here and see 429 later).
        probe = str(_cli(env, tmp_path, "clients", "add", "probe", "--audience", AUDIENCE)["client_secret"])
        deadline = time.time() + 60
        while _status(issuer.token_endpoint, probe, "probe") != 200:
            assert time.time() < deadline, issuer.log_tail()
            time.sleep(0.5)
        assert _status(issuer.token_endpoint, new) == 200
        # Sample the old secret until past the grace: 200 before not_after, 401 after it.
        seen: list[tuple[float, int]] = []
        while not seen or seen[-1][0] < not_after + 2 * TOLERANCE:
            sent = time.time()
            status = _status(issuer.token_endpoint, old)
            seen.append((sent if status == 200 else time.time(), status))
            time.sleep(0.25)
        assert _status(issuer.token_endpoint, new) == 200
    wrong = [
        (t - not_after, s)
        for t, s in seen
        if abs(t - not_after) > TOLERANCE and (s == 200) != (t < not_after)
    ]
    assert not wrong, (wrong, seen)
    assert any(s == 200 for _, s in seen) and seen[-1][1] == 401  # both sides of not_after were seen
    log = issuer.log.read_text()
    assert "secret expired" in log and old not in log and new not in log
