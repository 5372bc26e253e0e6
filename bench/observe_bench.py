"""What metrics cost: the token endpoint and the plugin with Prometheus metrics on vs off.

    .venv/bin/python bench/observe_bench.py [--requests 300] [--rounds 80]

Four apps, called in process through ASGI (no server, no socket: their noise would only dilute
the difference, so this is the upper bound of the relative cost):

* ``token-off`` / ``token-on`` - the issuer app (``create_issuer_app``), one ``client_secret_basic``
  client whose secret check is cached (the steady state of a busy client), ES256 signing; metrics
  off (``S2S_METRICS=false``) or on (its own registry: counters, the latency histogram, the audit
  and span calls that are always there);
* ``plugin-off`` / ``plugin-on`` - a Litestar ``GET`` behind ``S2SAuthPlugin`` with a reused token
  (served from the verified-token cache: the cheapest request, so the largest relative cost); the
  verifier with the process-wide observer only, or with a ``PrometheusObserver`` as well.

In both pairs "off" still calls the observer seam (the audit log, whose logger is disabled here as
in a process that does not route ``s2s.audit``), so the ratio is what the metrics add.

Each round runs a batch of every app, the order rotated, timed in CPU time of this thread (time
the machine gives other jobs is not counted); the ratio ``on / off`` is taken per round and its
median printed (with its quartiles, and the ratio of each app's best batch), goal ``<= 1.05``.
Many short rounds: on a shared machine a burst of load lands on few of them. Last, the observer
calls one request makes are timed alone (metrics on minus off): the most stable figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, get

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s.issuer import Client, InMemoryClientRegistry, IssuerSettings, hash_secret  # noqa: E402
from s2s.keys import (  # noqa: E402
    KeyState,
    LocalSigner,
    generate_key,
)
from s2s.litestar import S2SAuthPlugin  # noqa: E402
from s2s.litestar.issuer import create_issuer_app  # noqa: E402
from s2s.observe import HUB, Fanout, Observer, ObserveSettings  # noqa: E402
from s2s.observe.prometheus import PrometheusObserver  # noqa: E402
from s2s.verify import TokenVerifier, VerifierConfig  # noqa: E402

ISSUER = "http://issuer.bench"
TRUSTED = "https://issuer.bench"  # the plugin's issuer (a verifier fetches keys over https only)
AUDIENCE = "https://orders.bench"
SECRET = "bench-secret-0123456789abcdefghijklmnop"
BODY = b"grant_type=client_credentials&scope=orders%3Aread"
GOAL = 1.05

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def issuer_app(metrics: bool, keys: Path) -> Litestar:
    settings = IssuerSettings(issuer=ISSUER, keystore=f"file://{keys}", rate_limit=1e9, rate_burst=10**9)
    registry = InMemoryClientRegistry(
        [
            Client(
                client_id="bench",
                audiences=(AUDIENCE,),
                scopes=("orders:read",),
                secret_hash=hash_secret(SECRET),
            )
        ]
    )
    return create_issuer_app(
        settings, registry=registry, reload_loop=False, observe=ObserveSettings(metrics=metrics)
    )


def plugin_app(metrics: bool, jwks: bytes) -> Litestar:
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=jwks, headers={"Content-Type": "application/json"})

    observer = Fanout([HUB, PrometheusObserver()]) if metrics else None
    verifier = TokenVerifier(
        VerifierConfig.for_s2s(TRUSTED, AUDIENCE),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(serve)),
        observer=observer,
    )

    @get("/orders")
    async def orders() -> list[dict[str, int]]:
        return [{"id": 1}]

    return Litestar([orders], plugins=[S2SAuthPlugin(verifier)], logging_config=None, openapi_config=None)


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
    }  # fmt: skip


async def run(requests: int, rounds: int) -> dict[str, list[float]]:
    key = generate_key("ES256", now=time.time(), state=KeyState.CURRENT)
    jwks = json.dumps({"keys": [key.public_jwk_entry()]}).encode()
    now = int(time.time())
    claims = {"iss": TRUSTED, "sub": "b", "aud": AUDIENCE, "client_id": "b", "iat": now, "exp": now + 86400}
    token = LocalSigner().sign(key, {"typ": "at+jwt"}, claims)
    basic = "Basic " + base64.b64encode(f"bench:{SECRET}".encode()).decode()
    token_headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(BODY)).encode()),
        (b"authorization", basic.encode()),
    ]
    plugin_headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
    statuses: dict[str, set[int]] = {}

    with tempfile.TemporaryDirectory() as tmp:
        apps: dict[str, tuple[Litestar, dict[str, Any], bytes]] = {
            "token-off": (
                issuer_app(False, Path(tmp) / "off"),
                scope("POST", "/oauth2/token", token_headers),
                BODY,
            ),
            "token-on": (
                issuer_app(True, Path(tmp) / "on"),
                scope("POST", "/oauth2/token", token_headers),
                BODY,
            ),
            "plugin-off": (plugin_app(False, jwks), scope("GET", "/orders", plugin_headers), b""),
            "plugin-on": (plugin_app(True, jwks), scope("GET", "/orders", plugin_headers), b""),
        }
        per_request: dict[str, list[float]] = {name: [] for name in apps}
        async with contextlib.AsyncExitStack() as stack:
            for app, _, _ in apps.values():
                await stack.enter_async_context(app.lifespan())

            async def batch(name: str, n: int) -> float:
                app, sc, body = apps[name]
                seen = statuses.setdefault(name, set())

                async def receive() -> dict[str, Any]:
                    return {"type": "http.request", "body": body, "more_body": False}

                async def send(message: Any) -> None:
                    if message["type"] == "http.response.start":
                        seen.add(message["status"])

                asgi: Any = app
                start = time.thread_time()
                for _ in range(n):
                    await asgi({**sc, "state": {}}, receive, send)
                return (time.thread_time() - start) / n * 1e6

            names = list(apps)
            for name in names:  # warm-up: caches filled, the token cached on its second sight
                await batch(name, 50)
            for r in range(rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    per_request[name].append(await batch(name, requests))
    for name, seen in statuses.items():
        if seen != {200}:
            raise SystemExit(f"{name} answered {sorted(seen)}")
    return per_request


def _token_events(observer: Observer) -> None:
    """The observer calls one issued token makes (spans included), in the order the endpoint does."""
    with observer.span("s2s.token"):
        with observer.span("s2s.client_auth"):
            pass
        with observer.span("s2s.sign", kid="k", alg="ES256"):
            pass
        observer.token_issued(
            "bench", AUDIENCE, ("orders:read",), jti="j", kid="k", expires_at=1, source="127.0.0.1"
        )
    observer.token_request(200, 0.0001)


def _plugin_events(observer: Observer) -> None:
    """The observer call a request with a cached token makes."""
    observer.verified(TRUSTED, None, True)


def direct(repeat: int = 7, number: int = 20000) -> dict[str, float]:
    """Microseconds the metrics add per request: the request's observer calls, timed alone."""
    on = Fanout([HUB, PrometheusObserver()])
    out = {}
    for name, events in (("token", _token_events), ("plugin", _plugin_events)):
        cost = {}
        for label, observer in (("off", HUB), ("on", on)):
            best = min(timeit.repeat(lambda o=observer, e=events: e(o), number=number, repeat=repeat))
            cost[label] = best / number * 1e6
        out[name] = cost["on"] - cost["off"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per batch")
    parser.add_argument("--rounds", type=int, default=80)
    args = parser.parse_args()
    logging.getLogger("s2s").setLevel(logging.WARNING)  # no audit routing, as in a plain process
    added = direct()
    results = asyncio.run(run(args.requests, args.rounds))
    print(f"{args.rounds} rounds x {args.requests} requests, CPU microseconds per request (median, best):")
    for name, values in results.items():
        print(f"  {name:11s} {statistics.median(values):8.1f} {min(values):8.1f}")
    failed = False
    for pair in ("token", "plugin"):
        ratios = [on / off for on, off in zip(results[f"{pair}-on"], results[f"{pair}-off"], strict=True)]
        median = statistics.median(ratios)
        ok = median <= GOAL
        failed |= not ok
        quartiles = statistics.quantiles(ratios, n=4)
        spread = f"per-round quartiles {quartiles[0]:.3f}..{quartiles[2]:.3f}"
        best = min(results[f"{pair}-on"]) / min(results[f"{pair}-off"])
        verdict = "ok" if ok else "OVER"
        figures = f"{spread}; best/best {best:.3f}; goal <= {GOAL}"
        print(f"{pair}: metrics on / off = {median:.3f} ({figures}) {verdict}")
    print("the observer calls of one request, timed alone (best of 7 x 20000): metrics add")
    for pair in ("token", "plugin"):
        base = min(results[f"{pair}-off"])
        share = added[pair] / base * 100
        print(
            f"  {pair}: {added[pair]:.2f} us = {share:.1f} % of the best {pair}-off request ({base:.1f} us)"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
