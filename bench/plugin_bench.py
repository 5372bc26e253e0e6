"""Litestar requests/s with S2SAuthPlugin vs without, over real HTTP on 127.0.0.1.

    python bench/plugin_bench.py [--duration 3] [--rounds 5] [--connections 32] [--servers uvicorn,granian]

Five apps serve the same handler (``GET /orders`` -> a small JSON list):

* ``plain``   - no plugin;
* ``plugin``  - S2SAuthPlugin (middleware + verification of a reused token, served from the
  verified-token cache after the first request);
* ``guarded`` - the plugin plus a scope requirement as a route option
  (``requires=requires_scopes(...)``, checked by the plugin's middleware) and
  ``principal: PrincipalDep`` injected;
* ``guards``  - the same with the requirement as a Litestar guard (``guards=[requires_scopes(...)]``):
  Litestar copies the route handler for every guard call, which this shows;
* ``plaindep`` - no plugin, one injected dependency (an int): Litestar's dependency injection alone,
  the peer of ``guarded`` once DI is taken out.

Two figures per run: wall-clock requests/s (what wrk sees), and requests per CPU-second of the
server's processes (read from /proc, all processes of the server's session): on a shared machine
another job steals wall-clock time from the server, but not CPU time, so the second figure is what
the app would serve on a core of its own. Ratios are printed for both.

Every app runs in its own server process (one worker), all started at once and idle while another is
measured; the apps of one server run back to back and their order rotates each round, so machine
noise hits every app alike; ratios are taken per round, then the median. Servers are pinned to core
0 and wrk to core 1 (``taskset``; ``--no-pin`` to disable). Every request carries the same
``Authorization`` header, the plain app included. Load comes from ``wrk`` (``apt-get install wrk``),
one thread, keep-alive. A run with any non-2xx answer is an error.

First, the same three apps are called in-process (ASGI, no server) to give the plugin's cost in
microseconds per request, free of socket and scheduler noise.
The JWKS is served to the verifier in-process by an ``httpx.MockTransport`` (fetched once at
startup), so no third process is involved.

Prints req/s per (server, app) and round, and the medians of ``plugin / plain`` (goal >= 0.95),
``guarded / plain`` (goal >= 0.90) and ``guards / plain`` per server, with a reused token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, get
from litestar.di import NamedDependency, Provide

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s.keys import KeyState, LocalSigner, generate_key  # noqa: E402
from s2s.litestar import PrincipalDep, S2SAuthPlugin, requires_scopes  # noqa: E402
from s2s.verify import VerifierConfig  # noqa: E402

__all__ = ["guarded_app", "guards_app", "plain_app", "plaindep_app", "plugin_app"]

ISSUER = "https://issuer.bench"
AUDIENCE = "orders-api"
ORDERS = [{"id": i, "item": "paper", "quantity": i} for i in range(3)]
APPS = ("plain", "plugin", "guarded", "guards", "plaindep")
GOALS = {"plugin": 0.95, "guarded": 0.90, "guards": 0.90}


# -- the apps (loaded by the server subprocess with --factory) ---------------------------------------


def _plugin() -> S2SAuthPlugin:
    jwks = Path(os.environ["BENCH_JWKS_FILE"]).read_bytes()

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=jwks, headers={"Content-Type": "application/json"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    # The plugin builds and owns the verifier: JWKS prefetched in the lifespan, as in production.
    return S2SAuthPlugin(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=client)


def _one() -> int:
    return 1


def plaindep_app() -> Litestar:
    """No plugin, one injected dependency: what Litestar's dependency injection alone costs."""

    @get("/orders")
    async def orders(one: NamedDependency[int]) -> list[dict[str, Any]]:
        return ORDERS

    dependencies = {"one": Provide(_one, sync_to_thread=False)}
    return Litestar([orders], dependencies=dependencies, logging_config=None, openapi_config=None)


def plain_app() -> Litestar:
    @get("/orders")
    async def orders() -> list[dict[str, Any]]:
        return ORDERS

    return Litestar([orders], logging_config=None, openapi_config=None)


def plugin_app() -> Litestar:
    @get("/orders")
    async def orders() -> list[dict[str, Any]]:
        return ORDERS

    return Litestar([orders], plugins=[_plugin()], logging_config=None, openapi_config=None)


def guarded_app() -> Litestar:
    @get("/orders", requires=requires_scopes("orders:read"))
    async def orders(principal: PrincipalDep) -> list[dict[str, Any]]:
        return ORDERS

    return Litestar([orders], plugins=[_plugin()], logging_config=None, openapi_config=None)


def guards_app() -> Litestar:
    @get("/orders", guards=[requires_scopes("orders:read")])
    async def orders(principal: PrincipalDep) -> list[dict[str, Any]]:
        return ORDERS

    return Litestar([orders], plugins=[_plugin()], logging_config=None, openapi_config=None)


# -- the driver -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(server: str, app: str, port: int, pin: bool) -> list[str]:
    # Pinned: servers on core 0, wrk on core 1, so the load generator does not steal the server's core.
    prefix = ["taskset", "-c", "0"] if pin else []
    return prefix + _server_command(server, app, port)


def _server_command(server: str, app: str, port: int) -> list[str]:
    target = f"bench.plugin_bench:{app}_app"
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "granian", target, "--factory", "--interface", "asgi", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


@contextlib.contextmanager
def _servers(
    specs: list[tuple[str, str]], env: dict[str, str], token: str, pin: bool
) -> Iterator[dict[tuple[str, str], tuple[str, int]]]:
    """(url, session id) of a running server per (server, app)."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[tuple[str, str], tuple[str, int]] = {}
    try:
        for server, app in specs:
            port = _free_port()
            cmd = _command(server, app, port, pin)
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
            procs.append(proc)
            urls[(server, app)] = (f"http://127.0.0.1:{port}/orders", proc.pid)
        deadline = time.monotonic() + 30
        for key, (url, _) in urls.items():
            while True:
                try:
                    r = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=1)
                    if r.status_code != 200:
                        raise SystemExit(f"{key}: warm-up answered {r.status_code}: {r.text[:200]}")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{key}: server did not start") from None
                    time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(session: int) -> float:
    """User + system CPU time of every process in the session (a server and its workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended meanwhile
        # After "pid (comm)": state ppid pgrp session ... utime(14) stime(15), counted from 3.
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _wrk(url: str, token: str, duration: int, connections: int, pin: bool) -> tuple[float, int]:
    """Requests/s and the number of requests of one wrk run."""
    cmd = ["taskset", "-c", "1"] if pin else []
    cmd += [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
        "-H", f"Authorization: Bearer {token}", url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if not match or not count:
        raise SystemExit(f"cannot parse wrk output:\n{out}")
    return float(match.group(1)), int(count.group(1))


def _measure(
    target: tuple[str, int], token: str, duration: int, connections: int, pin: bool
) -> tuple[float, float]:
    """Requests/s, and requests per CPU-second of the server."""
    url, session = target
    before = _cpu_seconds(session)
    rps, count = _wrk(url, token, duration, connections, pin)
    cpu = _cpu_seconds(session) - before
    return rps, count / cpu if cpu > 0 else float("nan")


def _inprocess(token: str, requests: int, rounds: int = 10) -> dict[str, float]:
    """Microseconds per request with the ASGI app called directly: no server, no socket noise.

    The apps run side by side, batch after batch in turn, and each keeps its best batch, so a
    noisy moment of the machine does not land on one app only. Timed in CPU time of the thread.
    """
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/orders", "raw_path": b"/orders", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
    }  # fmt: skip
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def measure() -> dict[str, float]:
        apps = {name: globals()[f"{name}_app"]() for name in APPS}
        best = dict.fromkeys(apps, float("inf"))
        async with contextlib.AsyncExitStack() as stack:
            for app in apps.values():
                await stack.enter_async_context(app.lifespan())
            for _ in range(rounds):
                for name, app in apps.items():
                    # CPU time of this thread: time the machine gives to other jobs is not counted.
                    start = time.thread_time()
                    for _ in range(requests):
                        await app({**scope, "state": {}}, receive, send)  # type: ignore[arg-type]
                    best[name] = min(best[name], (time.thread_time() - start) / requests * 1e6)
        if statuses != {200}:
            raise SystemExit(f"in-process run answered {statuses}")
        return best

    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=3, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--servers", default="uvicorn,granian")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load per app before measuring")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and wrk to separate cores")
    parser.add_argument("--inprocess-requests", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2

    now = time.time()
    key = generate_key("ES256", now=now, state=KeyState.CURRENT)
    claims = {
        "iss": ISSUER, "sub": "bench", "aud": AUDIENCE, "client_id": "bench", "iat": int(now),
        "exp": int(now) + 3600, "jti": "bench-1", "scope": "orders:read",
    }  # fmt: skip
    token = LocalSigner().sign(key, {"typ": "at+jwt"}, claims)

    with tempfile.TemporaryDirectory() as tmp:
        jwks_file = Path(tmp) / "jwks.json"
        jwks_file.write_text(json.dumps({"keys": [key.public_jwk_entry()]}))
        os.environ["BENCH_JWKS_FILE"] = str(jwks_file)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }

        inproc = _inprocess(token, args.inprocess_requests)
        print("in-process (ASGI app called directly, CPU time, best batch of 10 per app, interleaved):")
        for name, us in inproc.items():
            print(f"  {name:8} {us:6.1f} us/request  (+{us - inproc['plain']:.1f} us over plain)")

        specs = [(s, a) for s in servers for a in APPS]
        results: dict[tuple[str, str], list[float]] = {spec: [] for spec in specs}
        per_cpu: dict[tuple[str, str], list[float]] = {spec: [] for spec in specs}
        with _servers(specs, env, token, pin) as urls:
            for url, _ in urls.values():
                _wrk(url, token, args.warmup, args.connections, pin)
            for round_no in range(args.rounds):
                # Same-server apps run back to back (their ratio is the figure); the order rotates
                # each round so no app always follows another.
                for server in servers:
                    shift = round_no % len(APPS)
                    for app in APPS[shift:] + APPS[:shift]:
                        rps, rpc = _measure(urls[(server, app)], token, args.duration, args.connections, pin)
                        results[(server, app)].append(rps)
                        per_cpu[(server, app)].append(rpc)
                        line = f"{server:8} {app:8} {rps:8.0f} req/s  {rpc:8.0f} req/cpu-s"
                        print(f"round {round_no + 1}  {line}", flush=True)

    for figure, table in (("req/s", results), ("req/cpu-s", per_cpu)):
        print()
        print(f"{'server':8} {'app':8} {'median ' + figure:>17}  runs")
        for (server, app), values in table.items():
            runs = " ".join(f"{v:.0f}" for v in values)
            print(f"{server:8} {app:8} {statistics.median(values):17.0f}  {runs}")
        print()
        for server in servers:
            # The last line: the plugin on a route with an injected principal, against a route
            # with an injected dependency and no plugin (Litestar's DI cost taken out).
            pairs = [(app, "plain") for app in APPS[1:]] + [("guarded", "plaindep")]
            for app, peer in pairs:
                base = table[(server, peer)]
                ratios = [a / p for a, p in zip(table[(server, app)], base, strict=True)]
                goal = f"goal >= {GOALS[app]:.2f}" if peer == "plain" and app in GOALS else ""
                pair = f"{app}/{peer}"
                print(
                    f"{server:8} {pair:16} {figure:9} median ratio {statistics.median(ratios):.3f}  "
                    f"(per round: {' '.join(f'{r:.2f}' for r in ratios)})  {goal}"
                )
    if len(servers) > 1:
        base = statistics.median(results[(servers[0], "plain")])
        for server in servers[1:]:
            other = statistics.median(results[(server, "plain")])
            print(f"plain app: {server} / {servers[0]} = {other / base:.2f}")


if __name__ == "__main__":
    main()
