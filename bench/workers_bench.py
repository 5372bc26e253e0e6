"""Tokens/s of ``s2s serve --workers N`` against ``--workers 1``, measured in the same run.

    .venv/bin/python bench/workers_bench.py [--workers 2] [--duration 5] [--rounds 3]
                                            [--connections 8] [--pin] [--state sqlite|memory]
                                            [--generator auto|wrk|python]

Two issuers over one file key store and client registry (``s2s serve --workers 1`` and
``--workers N``, real processes on 127.0.0.1, each idle while the other is measured), loaded with
the same client-credentials POST (Basic auth) by ``wrk`` (C, one thread, keep-alive, a Lua script;
``apt-get install -y wrk``). Without wrk the bench says so and uses a small asyncio load generator
instead (raw sockets, one pre-built request): it costs the server's cores more CPU per request
than wrk, so its ratio is a lower bound. Rounds alternate the order so a shared machine's noise
hits both alike; every answer must be 200.

Each run records, besides tokens/s (wall clock):

* the server's CPU time (user + system of its whole process group, from /proc) per token: what a
  token costs the server whatever else the machine runs. ``cpu/token(1) / cpu/token(N)`` is the
  per-worker efficiency: with N cores free for the workers, N workers give that times N the
  tokens/s of one (when the workers are CPU-bound, which ``busy`` shows);
* ``busy``: the server's CPU seconds per second of wall clock (cores kept busy), and the load
  generator's (``gen``, from the child rusage): on a 2-core box the generator takes CPU the second
  worker would use, and the sum shows what is left for anyone else.

``--pin`` (``taskset``) puts the 1-worker server on CPU 0 and the generator on CPU 1: one worker
then has a core to itself. The N-worker server may use every CPU (it must share one with the
generator when there are only N). ``--state memory`` gives each worker its own in-memory rate
limiter instead of the shared SQLite file (the default): it isolates what the shared state costs.

Prints each run, the medians, the wall-clock ratio ``N workers / 1 worker`` (goal: >= 0.85 x N)
and the CPU-per-token efficiency.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.issuer_bench import _group_cpu_seconds, _lua_script  # noqa: E402

AUDIENCE = "https://api.example.internal"
FORM = {"grant_type": "client_credentials", "audience": AUDIENCE}


@dataclass
class Run:
    tokens_per_s: float
    server_cpu_per_token_us: float
    server_busy: float  # server CPU seconds per wall-clock second
    generator_busy: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(
    workdir: Path, workers: int, env: dict[str, str], cpus: str | None
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    log = (workdir / f"serve-{workers}.log").open("wb")
    s2s = Path(sys.executable).parent / "s2s"
    prefix = ["taskset", "-c", cpus] if cpus else []
    proc = subprocess.Popen(
        [*prefix, str(s2s), "serve", "--port", str(port), "--workers", str(workers)],
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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk(url: str, script: Path, duration: int, connections: int, cpu: str | None) -> int:
    """Requests completed (all 200, else the bench stops)."""
    prefix = ["taskset", "-c", cpu] if cpu else []
    cmd = [*prefix, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    count = re.search(r"(\d+) requests in", out)
    if not count:
        raise SystemExit(f"cannot parse wrk output:\n{out}")
    return int(count.group(1))


_PYTHON_GENERATOR = r"""
import asyncio, sys, time
host, port, duration, connections = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
request = sys.stdin.buffer.read()
counts = []

async def one(deadline):
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    while time.monotonic() < deadline:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit("non-200 answer: " + head.split(b"\r\n", 1)[0].decode())
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        done += 1
    writer.close()
    counts.append(done)

async def main():
    deadline = time.monotonic() + duration
    await asyncio.gather(*(one(deadline) for _ in range(connections)))

asyncio.run(main())
print(sum(counts))
"""


def _python_generator(url: str, auth: str, duration: int, connections: int, cpu: str | None) -> int:
    parts = urlsplit(url)
    body = urlencode(FORM).encode()
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Authorization: {auth}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    prefix = ["taskset", "-c", cpu] if cpu else []
    cmd = [*prefix, sys.executable, "-c", _PYTHON_GENERATOR, parts.hostname or "127.0.0.1"]
    cmd += [str(parts.port), str(duration), str(connections)]
    out = subprocess.run(cmd, input=request, capture_output=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the load generator failed: {out.stderr.decode(errors='replace')[-500:]}")
    return int(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--pin", action="store_true", help="1 worker on CPU 0, the generator on CPU 1")
    parser.add_argument("--state", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()

    generator = args.generator
    if generator in ("auto", "wrk") and shutil.which("wrk") is None:
        if generator == "wrk":
            raise SystemExit("wrk is not installed (apt-get install -y wrk)")
        print(
            "NOTE: wrk is not installed (apt-get install -y wrk): using the built-in asyncio load "
            "generator, which takes more CPU from the workers; read the wall-clock ratio as a lower "
            "bound and the CPU per token as the figure that carries over.",
            flush=True,
        )
        generator = "python"
    elif generator == "auto":
        generator = "wrk"
    cpus = os.cpu_count() or 1
    pin = args.pin and shutil.which("taskset") is not None and cpus >= 2
    if args.pin and not pin:
        print("NOTE: --pin needs taskset and 2+ CPUs: running unpinned", flush=True)
    gen_cpu = "1" if pin else None

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
        # One client hammering: lift its rate limit, so this measures issuing, not refusing.
        env.update(S2S_RATE_LIMIT="1000000000", S2S_RATE_BURST="1000000000")
        if args.state == "memory":
            env["S2S_STATE"] = "memory"
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
        secret = json.loads(out)["client_secret"]
        auth = "Basic " + base64.b64encode(f"bench:{secret}".encode()).decode()
        script = workdir / "token.lua"
        _lua_script(script, FORM, auth)

        def load(url: str, duration: int) -> int:
            if generator == "wrk":
                return _wrk(url, script, duration, args.connections, gen_cpu)
            return _python_generator(url, auth, duration, args.connections, gen_cpu)

        servers = {
            n: _start(workdir, n, env, "0" if pin and n == 1 else None) for n in sorted({1, args.workers})
        }
        runs: dict[int, list[Run]] = {n: [] for n in servers}
        print(
            f"generator {generator}, {args.connections} connections, {args.duration}s runs, "
            f"state {args.state}, pinned {pin}, {cpus} CPUs, load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        try:
            for round_no in range(args.rounds):
                order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
                for n in order:
                    proc, url = servers[n]
                    token_url = url + "/oauth2/token"
                    load(token_url, 1)  # warm up
                    cpu_before, gen_before = _group_cpu_seconds(proc.pid), _children_cpu()
                    start = time.monotonic()
                    done = load(token_url, args.duration)
                    wall = time.monotonic() - start
                    server_cpu = _group_cpu_seconds(proc.pid) - cpu_before
                    run = Run(done / args.duration, server_cpu / done * 1e6, server_cpu / wall,
                              (_children_cpu() - gen_before) / wall)  # fmt: skip
                    runs[n].append(run)
                    print(
                        f"round {round_no + 1}: workers={n}: {run.tokens_per_s:7.0f} tokens/s  "
                        f"{run.server_cpu_per_token_us:6.0f} us server CPU/token  "
                        f"busy: server {run.server_busy:.2f} gen {run.generator_busy:.2f} cores",
                        flush=True,
                    )
        finally:
            for proc, _ in servers.values():
                _stop(proc)

    def med(n: int, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs[n])

    print("\nworkers  tokens/s  server CPU/token  server busy  generator busy   (medians)")
    for n in runs:
        print(
            f"{n:7}  {med(n, 'tokens_per_s'):8.0f}  {med(n, 'server_cpu_per_token_us'):13.0f} us"
            f"  {med(n, 'server_busy'):8.2f} cores  {med(n, 'generator_busy'):8.2f} cores"
        )
    n = args.workers
    if n == 1:
        return
    wall = med(n, "tokens_per_s") / med(1, "tokens_per_s")
    efficiency = med(1, "server_cpu_per_token_us") / med(n, "server_cpu_per_token_us")
    print(f"wall clock: {n} workers / 1 worker = {wall:.2f} (= {wall / n:.2f} x N; goal >= 0.85 x N)")
    print(
        f"CPU per token: 1 worker / {n} workers = {efficiency:.2f} (per-worker efficiency: "
        f"{n} workers on {n} free cores ~ {efficiency:.2f} x N of one, when CPU-bound)"
    )


if __name__ == "__main__":
    main()
