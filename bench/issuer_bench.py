"""Token endpoint requests/s against a bare Litestar POST, under uvicorn and granian, in one run.

    .venv/bin/python bench/issuer_bench.py [--duration 4] [--rounds 3] [--connections 32]
                                           [--servers uvicorn,granian] [--algs ES256,Ed25519] [--no-pin]
                                           [--metrics-off]

Apps, each in its own server process (one worker, started together, idle while another is measured):

* ``bare``          - a Litestar app with one ``POST /oauth2/token`` returning a small JSON object
                      (the peer: what any Litestar POST costs on this machine and server);
* ``issuer-ES256``  - :func:`s2s.litestar.issuer.create_issuer_app` over a file key store with ES256
                      keys and a client registry holding one ``client_secret_basic`` client;
* ``issuer-Ed25519``- the same with Ed25519 keys (``S2S_ALG=Ed25519``), to price the signature;
* ``issuer-ES256-nometrics`` (with ``--metrics-off``) - the first issuer with ``S2S_METRICS=false``:
  ``issuer-ES256-nometrics / issuer-ES256`` is what the Prometheus metrics cost (goal <= 1.05).

Every request is the same ``grant_type=client_credentials`` form with the same Basic credentials, the
bare app included (it ignores them). The issuer checks the secret with scrypt once, then from its
in-memory cache, so this measures the steady state of one busy client: parse, authenticate, mint,
sign, answer. Load comes from ``wrk`` (``apt-get install -y wrk``): one thread, keep-alive, a Lua
script for the POST body and headers. Runs are interleaved (bare, issuer, bare, issuer... with the
order rotated each round) so the noise of a shared machine hits all apps alike. On a machine with
two or more cores the servers are pinned to CPU 0 and wrk to CPU 1 (``taskset``), unless ``--no-pin``.
A run with any non-2xx answer or socket error aborts the bench.

``uvicorn-std`` (``--http httptools --loop uvloop``) is what ``s2s serve`` runs: s2s depends on
``uvicorn[standard]``, and uvicorn picks both when importable (it is measured only then).
``uvicorn`` is the pure-Python stack (``--http h11 --loop asyncio``), for comparison.

Prints req/s per (server, app) and round, then the medians, the median per-round ratios
``issuer / bare`` per server (goal: >= 0.80) and the server-to-server ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from litestar import Litestar, post

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s.issuer import Client, IssuerSettings, new_client, open_client_registry  # noqa: E402
from s2s.keys import (  # noqa: E402
    KeyState,
    LocalSigner,
    RotationPolicy,
    ensure_keys,
    generate_key,
    open_keystore,
    update_keyset,
)
from s2s.keys._rotation import with_alg  # noqa: E402
from s2s.litestar.issuer import create_issuer_app  # noqa: E402
from s2s.observe import ObserveSettings  # noqa: E402

__all__ = ["bare_app", "issuer_app"]

ISSUER = "http://issuer.bench"
AUDIENCE = "https://orders.bench"
SCOPE = "orders:read"
CLIENT_ID = "bench"
PATH = "/oauth2/token"
SMALL_JSON = {"access_token": "x" * 32, "token_type": "Bearer", "expires_in": 300}


# -- the apps (loaded by the server subprocess with --factory) ---------------------------------------


def bare_app() -> Litestar:
    @post(PATH, status_code=200)
    async def token() -> dict[str, Any]:
        return SMALL_JSON

    return Litestar([token], openapi_config=None, debug=False)


def issuer_app() -> Litestar:
    # Store, registry, algorithm and rate limit come from the S2S_* variables the driver sets.
    return create_issuer_app(IssuerSettings.from_env())


def _issuer_from(env: dict[str, str]) -> Litestar:
    return create_issuer_app(
        IssuerSettings.from_env(environ=env), reload_loop=False, observe=ObserveSettings.from_env(environ=env)
    )


# -- setup --------------------------------------------------------------------------------------------


def _prepare_issuer(directory: Path, alg: str, client: Client) -> dict[str, str]:
    """A key store with ``alg`` keys and a registry with ``client``; returns the S2S_* env for it."""
    policy = with_alg(RotationPolicy(), alg)
    now = time.time()
    update_keyset(open_keystore(f"file://{directory}"), lambda ks: ensure_keys(ks, now, policy))
    registry_url = f"file://{directory / 'clients.json'}"
    open_client_registry(registry_url).add(client)
    return {
        "S2S_ISSUER": ISSUER,
        "S2S_KEYSTORE": f"file://{directory}",
        "S2S_CLIENTS": registry_url,
        "S2S_ALG": alg,
        # One client sends every request: its per-client rate limit is not what is measured.
        "S2S_RATE_LIMIT": "1000000000",
        "S2S_RATE_BURST": "1000000000",
    }


def _command(server: str, target: str, port: int, pin: bool) -> list[str]:
    prefix = ["taskset", "-c", "0"] if pin else []
    common = ["--factory", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    quiet = ["--no-access-log", "--log-level", "warning"]
    if server == "granian":
        return [*prefix, sys.executable, "-m", "granian", target, "--interface", "asgi", *common, *quiet]
    http, loop = ("httptools", "uvloop") if server == "uvicorn-std" else ("h11", "asyncio")
    return [*prefix, sys.executable, "-m", "uvicorn", target, *common, "--http", http, "--loop", loop, *quiet]


def _warm_up_check(app: str, url: str, form: dict[str, str], auth: str) -> None:
    response = httpx.post(url, data=form, headers={"Authorization": auth}, timeout=2, trust_env=False)
    if response.status_code != 200:
        raise SystemExit(f"{app}: answered {response.status_code}: {response.text[:200]}")
    if app.startswith("issuer-"):
        token = response.json()["access_token"]
        alg = app.split("-")[1]
        protected = base64.urlsafe_b64decode(token.split(".")[0] + "==").decode()
        if f'"alg":"{alg}"' not in protected.replace(" ", ""):
            raise SystemExit(f"{app}: token not signed with {alg}: {protected}")


@contextlib.contextmanager
def _servers(
    specs: list[tuple[str, str]], envs: dict[str, dict[str, str]], pin: bool, form: dict[str, str], auth: str
) -> Iterator[dict[tuple[str, str], tuple[str, int]]]:
    """Start every (server, app); yields (url, process group id) per spec."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[tuple[str, str], str] = {}
    try:
        for server, app in specs:
            port = _free_port()
            target = "bench.issuer_bench:bare_app" if app == "bare" else "bench.issuer_bench:issuer_app"
            cmd = _command(server, target, port, pin)
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=envs[app], start_new_session=True))
            urls[(server, app)] = f"http://127.0.0.1:{port}{PATH}"
        deadline = time.monotonic() + 60
        for (server, app), url in urls.items():
            while True:
                try:
                    _warm_up_check(app, url, form, auth)
                    break
                except (httpx.TransportError, ValueError):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{server} {app}: server did not start") from None
                    time.sleep(0.1)
        # start_new_session: each server leads its own process group (granian's worker included).
        yield {spec: (url, proc.pid) for (spec, url), proc in zip(urls.items(), procs, strict=True)}
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lua_script(path: Path, form: dict[str, str], auth: str) -> None:
    body = urlencode(form)
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["Authorization"] = "{auth}"\n'
    )
    path.chmod(0o600)  # it holds the (throw-away) client secret


def _wrk(url: str, script: Path, duration: int, connections: int, pin: bool) -> tuple[float, int]:
    """(requests/s, requests completed)."""
    prefix = ["taskset", "-c", "1"] if pin else []
    cmd = [*prefix, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if not rate or not count:
        raise SystemExit(f"cannot parse wrk output:\n{out}")
    return float(rate.group(1)), int(count.group(1))


def _group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in a process group (Linux /proc).

    A server's CPU per request barely depends on what else the machine runs, unlike its req/s:
    on a shared machine it is the steadier measure of what a request costs the server.
    """
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        # After "pid (comm)": state ppid pgrp ... utime is field 14 and stime 15 of the whole line.
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _signing_cost(alg: str, n: int = 2000) -> float:
    """Microseconds per LocalSigner.sign of a typical access token, key already imported."""
    key = generate_key(alg, now=time.time(), state=KeyState.CURRENT)
    signer = LocalSigner()
    now = int(time.time())
    claims = {
        "iss": ISSUER, "sub": CLIENT_ID, "aud": AUDIENCE, "client_id": CLIENT_ID, "scope": SCOPE,
        "iat": now, "exp": now + 300, "jti": "x" * 22,
    }  # fmt: skip
    signer.sign(key, {"typ": "at+jwt"}, claims)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n // 5):
            signer.sign(key, {"typ": "at+jwt"}, claims)
        best = min(best, (time.perf_counter() - start) / (n // 5))
    return best * 1e6


async def _asgi_cost(app: Litestar, body: bytes, auth: str, n: int) -> float:
    """Microseconds per token request through the whole ASGI app, no server and no socket."""
    asgi: Any = app  # driven with plain dicts, not Litestar's TypedDict scopes and events
    started: list[Any] = []
    lifespan_in: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await lifespan_in.put({"type": "lifespan.startup"})

    async def lifespan_send(message: Any) -> None:
        started.append(message)

    lifespan = asyncio.create_task(
        asgi({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lifespan_in.get, lifespan_send)
    )
    while not started:
        await asyncio.sleep(0.01)
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", auth.encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
        "state": {},
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await asgi(dict(scope), receive, send)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n // 5):
            await asgi(dict(scope), receive, send)
        best = min(best, (time.perf_counter() - start) / (n // 5))
    await lifespan_in.put({"type": "lifespan.shutdown"})
    await lifespan
    if set(statuses) != {200}:
        raise SystemExit(f"in-process requests answered {sorted(set(statuses))}")
    return best * 1e6


def _available_servers() -> list[str]:
    servers = ["uvicorn", "granian"]
    if importlib.util.find_spec("httptools") and importlib.util.find_spec("uvloop"):
        servers.insert(1, "uvicorn-std")
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=4, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--servers", default=",".join(_available_servers()))
    parser.add_argument("--algs", default="ES256,Ed25519", help="issuer signing algorithms to measure")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load per app before measuring")
    parser.add_argument("--inprocess", type=int, default=2000, help="requests per in-process measurement")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to CPUs")
    parser.add_argument(
        "--metrics-off",
        action="store_true",
        help="also run the first alg's issuer with S2S_METRICS=false (issuer-ALG-nometrics)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    algs = [a.strip() for a in args.algs.split(",") if a.strip()]
    apps = ["bare", *(f"issuer-{alg}" for alg in algs)]

    print("signing cost per token (LocalSigner, in process, best of 5):")
    for alg in algs:
        print(f"  {alg:8} {_signing_cost(alg):7.1f} us")

    client, secret = new_client(CLIENT_ID, audiences=[AUDIENCE], scopes=[SCOPE], now=time.time())
    assert secret is not None
    auth = "Basic " + base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
    form = {"grant_type": "client_credentials", "audience": AUDIENCE, "scope": SCOPE}

    with tempfile.TemporaryDirectory(prefix="s2s-bench-") as tmp:
        # Extra packages (httptools, uvloop for uvicorn-std) may come from the caller's PYTHONPATH.
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
        base_env["PYTHONPATH"] = python_path
        envs = {"bare": base_env}
        for alg in algs:
            envs[f"issuer-{alg}"] = {**base_env, **_prepare_issuer(Path(tmp) / alg, alg, client)}
        if args.metrics_off:
            apps.append(f"issuer-{algs[0]}-nometrics")
            envs[apps[-1]] = {**envs[f"issuer-{algs[0]}"], "S2S_METRICS": "false"}
        script = Path(tmp) / "token.lua"
        _lua_script(script, form, auth)

        print("whole ASGI app per request, in process (no server, no socket; best of 5):")
        body = urlencode(form).encode()
        for app in apps:
            for _ in range(2):  # twice, interleaved: the second pass runs warm
                instance = bare_app() if app == "bare" else _issuer_from(envs[app])
                cost = asyncio.run(_asgi_cost(instance, body, auth, args.inprocess))
            print(f"  {app:15} {cost:7.1f} us")

        specs = [(s, a) for s in servers for a in apps]
        wall: dict[tuple[str, str], list[float]] = {spec: [] for spec in specs}
        per_cpu: dict[tuple[str, str], list[float]] = {spec: [] for spec in specs}
        print(f"servers {servers}, apps {apps}, pinned: {pin}, {args.rounds} rounds x {args.duration}s")
        with _servers(specs, envs, pin, form, auth) as running:
            for url, _ in running.values():
                _wrk(url, script, args.warmup, args.connections, pin)
            for round_no in range(args.rounds):
                # Within a round the apps of one server alternate (bare, issuer, ...); the starting
                # app and server rotate from round to round.
                shift = round_no % len(apps)
                order = [(s, a) for s in servers for a in apps[shift:] + apps[:shift]]
                if round_no % 2:
                    order.reverse()
                for spec in order:
                    url, pgid = running[spec]
                    cpu_before = _group_cpu_seconds(pgid)
                    rps, requests = _wrk(url, script, args.duration, args.connections, pin)
                    cpu = _group_cpu_seconds(pgid) - cpu_before
                    wall[spec].append(rps)
                    per_cpu[spec].append(requests / cpu if cpu > 0 else float("nan"))
                    print(
                        f"round {round_no + 1}  {spec[0]:11} {spec[1]:15} {rps:9.0f} req/s "
                        f"{per_cpu[spec][-1]:9.0f} req/server-CPU-s  (server CPU {cpu / args.duration:.2f})",
                        flush=True,
                    )

    for title, results in (("req/s (wall clock)", wall), ("requests per server CPU-second", per_cpu)):
        _report(title, results, servers, apps)


def _report(
    title: str, results: dict[tuple[str, str], list[float]], servers: list[str], apps: list[str]
) -> None:
    print(f"\n== {title}")
    print(f"{'server':11} {'app':15} {'median':>9}  runs")
    for (server, app), values in results.items():
        runs = " ".join(f"{v:.0f}" for v in values)
        print(f"{server:11} {app:15} {statistics.median(values):9.0f}  {runs}")
    for server in servers:
        bare = results[(server, "bare")]
        for app in apps[1:]:
            ratios = [a / b for a, b in zip(results[(server, app)], bare, strict=True)]
            print(
                f"{server:11} {app:15} / bare  median ratio {statistics.median(ratios):.3f}  "
                f"(per round: {' '.join(f'{r:.3f}' for r in ratios)})  goal >= 0.80"
            )
    for server in servers:
        base = statistics.median(results[(server, apps[1])])
        for app in apps[2:]:
            print(f"{server:11} {app} / {apps[1]} = {statistics.median(results[(server, app)]) / base:.3f}")
    for app in apps:
        base = statistics.median(results[(servers[0], app)])
        for server in servers[1:]:
            other = statistics.median(results[(server, app)])
            print(f"{app:15} {server} / {servers[0]} = {other / base:.2f}")


if __name__ == "__main__":
    main()
