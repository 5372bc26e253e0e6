"""`s2s serve --workers 2`: prometheus_client's multi-process mode adds the workers' counts up."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.observe.helpers import sample
from tests.support import free_port, running_issuer

DEMO_AUDIENCE = "https://api.example.internal"


def tokens_per_worker(directory: Path) -> dict[str, float]:
    """Tokens issued as each worker's own sample file holds them (``counter_<pid>.db``)."""
    from prometheus_client.mmap_dict import MmapedDict

    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        total = 0.0
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[1] == "s2s_issuer_tokens_issued_total":
                total += value
        counts[path.stem] = total
    return counts


@pytest.mark.parametrize("where", ["metrics-port", "main-port"])
def test_counts_from_two_workers_add_up(tmp_path: Path, where: str) -> None:
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    (multiproc / "counter_1.db").write_bytes(b"stale")  # an earlier run's samples are wiped
    metrics_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    if where == "metrics-port":
        env["S2S_METRICS_PORT"] = str(metrics_port)
    with running_issuer(env, tmp_path, "--demo", "--workers", "2", startup_timeout=60) as issuer:
        text = issuer.log.read_text()
        secret = (
            next(x for x in text.splitlines() if "client_secret=" in x).split("client_secret=")[1].strip()
        )
        form = {"grant_type": "client_credentials", "audience": DEMO_AUDIENCE}
        sent = 0
        # New connections each time: the kernel spreads them over both workers' accept(). Until
        # both workers issued some (bounded), so the sum below really adds two workers up.
        while sent < 200:
            with httpx.Client(trust_env=False) as http:
                answer = http.post(issuer.token_endpoint, data=form, auth=("demo", secret), timeout=30)
            assert answer.status_code == 200, answer.text
            sent += 1
            per_worker = tokens_per_worker(multiproc)
            if sent >= 10 and sum(1 for n in per_worker.values() if n > 0) >= 2:
                break
        assert sum(1 for n in per_worker.values() if n > 0) == 2, per_worker
        # The metrics port (served by `s2s serve` itself), or any worker's /metrics (new
        # connections: several workers answer), sees every worker's samples.
        base = f"http://127.0.0.1:{metrics_port}" if where == "metrics-port" else issuer.url
        for _ in range(4):
            scrape = httpx.get(f"{base}/metrics", timeout=10, trust_env=False).text
            issued = sample(
                scrape, "s2s_issuer_tokens_issued_total", client_id="demo", audience=DEMO_AUDIENCE
            )
            assert issued == sent
            assert sample(scrape, "s2s_issuer_token_request_duration_seconds_count") == sent
        if where == "metrics-port":
            assert httpx.get(f"{issuer.url}/metrics", timeout=10, trust_env=False).status_code == 404
        else:
            assert sample(scrape, "s2s_issuer_ready") == 1
    assert not (multiproc / "counter_1.db").exists()
