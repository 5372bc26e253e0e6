"""Tokens/s of ``s2s serve --workers N`` against ``--workers 1``, measured in the same run.

    .venv/bin/python bench/workers_bench.py [--workers 2] [--duration 5] [--rounds 3] [--connections 8]

Two issuers over one file key store and client registry (``s2s serve --workers 1`` and
``--workers N``, real processes on 127.0.0.1, each idle while the other is measured), loaded by
``wrk`` (one thread, keep-alive; ``apt-get install -y wrk``) with the same client-credentials POST.
Rounds alternate the order so a shared machine's noise hits both alike. Prints tokens/s per round,
the medians and the ratio ``N workers / 1 worker`` (goal: >= 0.85 x N). The load generator runs
on the same machine: on a 2-core box it takes CPU the second worker would use, so the ratio there is
a lower bound of what N workers give on a host with spare cores.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.issuer_bench import _lua_script, _wrk  # noqa: E402

AUDIENCE = "https://api.example.internal"


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(workdir: Path, workers: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    log = (workdir / f"serve-{workers}.log").open("wb")
    s2s = Path(sys.executable).parent / "s2s"
    proc = subprocess.Popen(
        [str(s2s), "serve", "--port", str(port), "--workers", str(workers)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=1, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"s2s serve --workers {workers} did not start: see {log.name}")
        time.sleep(0.2)
    time.sleep(1)  # every worker up, not only the first that answered
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
        # One client hammering: lift its rate limit, so this measures issuing, not refusing.
        env.update(S2S_RATE_LIMIT="1000000000", S2S_RATE_BURST="1000000000")
        # One store and registry for both, made once; a generous rate limit: this measures signing.
        s2s = Path(sys.executable).parent / "s2s"
        subprocess.run([str(s2s), "keys", "init"], cwd=workdir, env=env, check=True, capture_output=True)
        out = subprocess.run(
            [str(s2s), "clients", "add", "bench", "--audience", AUDIENCE, "--json"],
            cwd=workdir,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        import json  # noqa: PLC0415

        secret = json.loads(out)["client_secret"]
        auth = "Basic " + base64.b64encode(f"bench:{secret}".encode()).decode()
        script = workdir / "token.lua"
        _lua_script(script, {"grant_type": "client_credentials", "audience": AUDIENCE}, auth)

        servers = {n: _start(workdir, n, env) for n in (1, args.workers)}
        rates: dict[int, list[float]] = {n: [] for n in servers}
        try:
            for round_no in range(args.rounds):
                order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
                for n in order:
                    _wrk(servers[n][1] + "/oauth2/token", script, 1, args.connections, False)  # warm up
                    rate, _ = _wrk(
                        servers[n][1] + "/oauth2/token", script, args.duration, args.connections, False
                    )
                    rates[n].append(rate)
                    print(f"round {round_no + 1}: workers={n}: {rate:8.0f} tokens/s", flush=True)
        finally:
            for proc, _ in servers.values():
                _stop(proc)
    one, many = statistics.median(rates[1]), statistics.median(rates[args.workers])
    print(f"median tokens/s: 1 worker {one:.0f}, {args.workers} workers {many:.0f}")
    print(
        f"ratio {args.workers} workers / 1 worker: {many / one:.2f} "
        f"(= {many / one / args.workers:.2f} x N; goal >= 0.85 x N) on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
