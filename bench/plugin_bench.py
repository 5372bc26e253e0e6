"""Litestar requests/s with S2SAuthPlugin vs without, over real HTTP on 127.0.0.1.

    python bench/plugin_bench.py [--duration 3] [--rounds 5] [--connections 32] [--servers uvicorn,granian]

Three apps serve the same handler (``GET /orders`` -> a small JSON list):

* ``plain``   - no plugin;
* ``plugin``  - S2SAuthPlugin (middleware + verification of a reused token, served from the
  verified-token cache after the first request);
* ``guarded`` - the plugin plus a ``requires_scopes`` guard and ``principal: PrincipalDep`` injected.

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

Prints req/s per (server, app) and round, and the medians of ``plugin / plain`` and
``guarded / plain`` per server (goal: >= 0.90). The issue asks for this figure with a reused token.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s.keys.model import KeyState, generate_key  # noqa: E402
from s2s.keys.signing import LocalSigner  # noqa: E402
from s2s.litestar import PrincipalDep, S2SAuthPlugin, requires_scopes  # noqa: E402
from s2s.verify import VerifierConfig  # noqa: E402

__all__ = ["guarded_app", "plain_app", "plugin_app"]

ISSUER = "https://issuer.bench"
AUDIENCE = "orders-api"
ORDERS = [{"id": i, "item": "paper", "quantity": i} for i in range(3)]
APPS = ("plain", "plugin", "guarded")


# -- the apps (loaded by the server subprocess with --factory) ---------------------------------------


def _plugin() -> S2SAuthPlugin:
    jwks = Path(os.environ["BENCH_JWKS_FILE"]).read_bytes()

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=jwks, headers={"Content-Type": "application/json"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    # The plugin builds and owns the verifier: JWKS prefetched in the lifespan, as in production.
    return S2SAuthPlugin(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=client)


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
) -> Iterator[dict[tuple[str, str], str]]:
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[tuple[str, str], str] = {}
    try:
        for server, app in specs:
            port = _free_port()
            cmd = _command(server, app, port, pin)
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True))
            urls[(server, app)] = f"http://127.0.0.1:{port}/orders"
        deadline = time.monotonic() + 30
        for key, url in urls.items():
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


def _wrk(url: str, token: str, duration: int, connections: int, pin: bool) -> float:
    cmd = ["taskset", "-c", "1"] if pin else []
    cmd += [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
        "-H", f"Authorization: Bearer {token}", url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"cannot parse wrk output:\n{out}")
    return float(match.group(1))


def _inprocess(token: str, requests: int) -> dict[str, float]:
    """Microseconds per request with the ASGI app called directly: no server, no socket noise."""

    async def measure(app: Litestar) -> float:
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

        async with app.lifespan():
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(requests):
                    await app({**scope, "state": {}}, receive, send)  # type: ignore[arg-type]
                best = min(best, (time.perf_counter() - start) / requests * 1e6)
        if statuses != {200}:
            raise SystemExit(f"in-process run answered {statuses}")
        return best

    factories = {"plain": plain_app, "plugin": plugin_app, "guarded": guarded_app}
    return {name: asyncio.run(measure(factory())) for name, factory in factories.items()}


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
    parser.add_argument("--inprocess-requests", type=int, default=5000)
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
        print("in-process (ASGI app called directly, best of 5):")
        for name, us in inproc.items():
            print(f"  {name:8} {us:6.1f} us/request  (+{us - inproc['plain']:.1f} us over plain)")

        specs = [(s, a) for s in servers for a in APPS]
        results: dict[tuple[str, str], list[float]] = {spec: [] for spec in specs}
        with _servers(specs, env, token, pin) as urls:
            for url in urls.values():
                _wrk(url, token, args.warmup, args.connections, pin)
            for round_no in range(args.rounds):
                # Same-server apps run back to back (their ratio is the figure); the order rotates
                # each round so no app always follows another.
                for server in servers:
                    shift = round_no % len(APPS)
                    for app in APPS[shift:] + APPS[:shift]:
                        rps = _wrk(urls[(server, app)], token, args.duration, args.connections, pin)
                        results[(server, app)].append(rps)
                        print(f"round {round_no + 1}  {server:8} {app:8} {rps:8.0f} req/s", flush=True)

    print()
    print(f"{'server':8} {'app':8} {'median req/s':>13}  runs")
    for (server, app), values in results.items():
        runs = " ".join(f"{v:.0f}" for v in values)
        print(f"{server:8} {app:8} {statistics.median(values):13.0f}  {runs}")
    print()
    for server in servers:
        plain = results[(server, "plain")]
        for app in ("plugin", "guarded"):
            ratios = [a / p for a, p in zip(results[(server, app)], plain, strict=True)]
            print(
                f"{server:8} {app:8}/plain  median ratio {statistics.median(ratios):.3f}  "
                f"(per round: {' '.join(f'{r:.2f}' for r in ratios)})  goal >= 0.90"
            )
    if len(servers) > 1:
        base = statistics.median(results[(servers[0], "plain")])
        for server in servers[1:]:
            other = statistics.median(results[(server, "plain")])
            print(f"plain app: {server} / {servers[0]} = {other / base:.2f}")


if __name__ == "__main__":
    main()
