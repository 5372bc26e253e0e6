"""CPU instructions per request of the ``plugin_bench`` apps over uvicorn, counted by callgrind.

    python bench/plugin_instructions.py [--requests 400] [--apps plain,plugin,guarded,accessor]

Requests per second on a shared machine move by tens of percent from one run to the next;
instructions do not. Each app (see ``bench/plugin_bench.py``) runs in its own uvicorn server
(httptools, one worker) under ``valgrind --tool=callgrind --dump-before=os_getppid``; a ``/mark``
route outside the app calls ``os.getppid()``, so callgrind writes its counters at each mark. The
client warms up with 50 requests, marks, sends ``--requests`` keep-alive requests with the same
token, and marks again: the dump between the two marks is the cost of those requests, the whole
server included (HTTP parsing, Litestar, the plugin). Prints instructions per request and
``plain / app``, the ratio the requests/s goals are about (plugin >= 0.95, guarded >= 0.90).

Needs valgrind and a Python built with symbols (``os_getppid`` must be visible to callgrind).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import plugin_bench  # noqa: E402
from s2s.keys import KeyState, LocalSigner, generate_key  # noqa: E402

__all__ = ["main"]

WARMUP = 50


def _serve(app_name: str, port: int) -> None:
    """The server process (under valgrind): the app, plus ``/mark`` that makes callgrind dump."""
    import uvicorn  # noqa: PLC0415

    inner = getattr(plugin_bench, f"{app_name}_app")()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/mark":
            os.getppid()  # callgrind: --dump-before=os_getppid
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await inner(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http="httptools")


def _count(app_name: str, requests: int, token: str, env: dict[str, str], out: Path) -> int:
    """Instructions per request of one app."""
    port = plugin_bench._free_port()
    prefix = out / f"{app_name}.cg"
    cmd = [
        "valgrind", "--tool=callgrind", "--dump-before=os_getppid", f"--callgrind-out-file={prefix}.%p",
        sys.executable, __file__, "--serve", app_name, "--port", str(port),
    ]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900  # valgrind starts Python slowly on a busy machine
        while True:
            try:
                httpx.get(f"{url}/mark", timeout=30)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"{app_name}: the server did not start under valgrind") from None
                time.sleep(0.5)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(headers=headers, timeout=60) as client:
            for _ in range(WARMUP):
                if client.get(f"{url}/orders").status_code != 200:
                    raise SystemExit(f"{app_name}: warm-up request refused")
            client.get(f"{url}/mark")
            for _ in range(requests):
                client.get(f"{url}/orders")
            client.get(f"{url}/mark")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    # Dumps: .1 start to the first mark, .2 the warm-up, .3 the measured requests.
    dump = Path(f"{prefix}.{server.pid}.3")
    if not dump.exists():
        raise SystemExit(f"{app_name}: no callgrind dump at the marks (is os_getppid visible to valgrind?)")
    for line in dump.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1]) // requests
    raise SystemExit(f"{app_name}: no summary in {dump}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--apps", default="plain,plugin,guarded,accessor")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port)
        return
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    if "plain" not in apps:
        apps.insert(0, "plain")

    now = time.time()
    key = generate_key("ES256", now=now, state=KeyState.CURRENT)
    claims = {
        "iss": plugin_bench.ISSUER, "sub": "bench", "aud": plugin_bench.AUDIENCE, "client_id": "bench",
        "iat": int(now), "exp": int(now) + 36000, "jti": "bench-1", "scope": "orders:read",
    }  # fmt: skip
    token = LocalSigner().sign(key, {"typ": "at+jwt"}, claims)
    with tempfile.TemporaryDirectory() as tmp:
        jwks_file = Path(tmp) / "jwks.json"
        jwks_file.write_text(json.dumps({"keys": [key.public_jwk_entry()]}))
        env = {
            **os.environ,
            "BENCH_JWKS_FILE": str(jwks_file),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        counts = {app: _count(app, args.requests, token, env, Path(tmp)) for app in apps}
    print(f"{'app':9} {'instructions/request':>21}  {'over plain':>10}  plain/app")
    for app, count in counts.items():
        extra = count - counts["plain"]
        goal = plugin_bench.GOALS.get(app)
        note = f"  goal >= {goal:.2f}" if goal else ""
        print(f"{app:9} {count:21,}  {extra:+10,}  {counts['plain'] / count:.3f}{note}")


if __name__ == "__main__":
    main()
