"""The fault suite (issue 10 "Proof"): real ``s2s serve`` and ``moto_server`` processes on 127.0.0.1,
one fault each, bounded (each scenario well under a minute).

* SIGKILL of an issuer under a bounded load, and its restart on the same port: callers see 0
  failures (holders serve their cached token; callers without one ride out the restart).
* SIGSTOP of ``moto_server`` for 20 s: ``/health`` answers within 1 s throughout, ``/ready`` turns
  503 and back after SIGCONT, token requests get 503 ``temporarily_unavailable`` quickly.
* ``moto_server`` restarted empty: no keyset or registry is replaced; the replica keeps its keys.
* A key store that can be read but not written during a scheduled rotation: reported as that,
  the replica keeps serving, and the rotation lands once the store is writable again.
* SIGSTOP of a JWKS host (the issuer) for 20 s under a resource service (the example app with the
  s2s plugin, uvicorn): tokens of known kids keep verifying (0 failures), an unknown kid is
  refused 503 within the fetch deadline, ``/health`` answers throughout, and a token of a key made
  during the stop verifies after SIGCONT once the cooldown has passed.
* SIGSTOP of ``moto_server`` for 20 s with ``S2S_STATE_FAILURE_MODE=local`` (DynamoDB state, keys
  and clients in files): ``/ready`` stays 200 saying degraded, tokens keep being issued from the
  replica's memory once the outage is noticed, and the shared state is used again after SIGCONT.

Every wait is on a condition with a generous ceiling; the figures are printed (``-s``) for the
record: ``.venv/bin/python -m pytest -m e2e tests/e2e/test_faults.py -s -q``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from s2s.client import TokenClient
from tests.e2e.aws import AwsDeployment, MotoServer, aws, moto, running_resource_service  # noqa: F401
from tests.e2e.conftest import AUDIENCE, CLIENT_ID, SCOPE, Deployment
from tests.support import (
    BoundedLoad,
    log_tail,
    running_issuer,
    s2s_executable,
    stop_process,
    wait_until_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

__all__: list[str] = []


def _get(url: str, timeout: float = 5) -> tuple[int | None, float, dict[str, Any] | None]:
    """(status or None on a transport error, seconds taken, JSON body or None)."""
    started = time.monotonic()
    try:
        response = httpx.get(url, timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None, time.monotonic() - started, None
    body = None
    with contextlib.suppress(ValueError):
        body = response.json()
    return response.status_code, time.monotonic() - started, body


def _token(endpoint: str, client_id: str, secret: str, timeout: float = 30) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        endpoint,
        data={"grant_type": "client_credentials", "audience": AUDIENCE, "scope": SCOPE},
        auth=(client_id, secret),
        timeout=timeout,
        trust_env=False,
    )
    return response, time.monotonic() - started


def _wait_for(what: str, condition: Callable[[], bool], ceiling: float, log: Path | None = None) -> float:
    """Seconds until ``condition()`` holds; fails after ``ceiling`` seconds."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < ceiling, f"{what}: not within {ceiling}s\n" + (
            log_tail(log) if log else ""
        )
        time.sleep(0.05)
    return time.monotonic() - started


def _stop_while_running(
    pid: int, seconds: float, workers: list[threading.Thread], running: Callable[[], bool]
) -> tuple[float, float]:
    """Start ``workers``, wait until ``running()`` says each has seen an answer before the fault,
    then SIGSTOP ``pid`` for ``seconds`` (SIGCONT whatever happens); the monotonic times of the stop
    and of the SIGCONT."""
    for worker in workers:
        worker.start()
    _wait_for("the workers' first answers before the stop", running, ceiling=120)
    try:
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
    return stopped_at, time.monotonic()


# -- an issuer on a fixed port, so that it can be killed and started again --------------------------
@dataclass
class Replica:
    env: dict[str, str]
    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.workdir / f"replica-{self.port}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(s2s_executable()), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.workdir,
                env={**self.env, "PYTHONUNBUFFERED": "1", "S2S_ISSUER": self.url},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        assert self.proc is not None
        wait_until_ready(f"{self.url}/ready", self.proc, self.logs[-1], timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@contextlib.contextmanager
def replica(env: dict[str, str], workdir: Path) -> Iterator[Replica]:
    from tests.support import free_port

    running = Replica(env, workdir, free_port())
    running.start()
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


class Callers(BoundedLoad):
    """Callers of the token client: ``holders`` keep one cached token, ``fetchers`` drop theirs
    before every call, so each call goes to the issuer and rides out what happens to it."""

    def __init__(self, endpoint: str, secret: str, holders: int, fetchers: int, max_seconds: float) -> None:
        super().__init__(holders + fetchers, ceiling=max_seconds)
        self._endpoint, self._secret = endpoint, secret
        self._roles = iter(["holder"] * holders + ["fetcher"] * fetchers)
        self._roles_lock = threading.Lock()
        self.calls = {"holder": 0, "fetcher": 0}
        self.failures: list[str] = []
        self.slowest = 0.0

    def _worker(self) -> None:
        with self._roles_lock:
            role = next(self._roles)
        with TokenClient(self._endpoint, client_id=CLIENT_ID, client_secret=self._secret) as client:
            with contextlib.suppress(Exception):
                client.get_token(AUDIENCE, [SCOPE])  # warm: a holder holds a valid token from here
            while self._claim() is not None:
                if role == "fetcher":
                    client.clear()
                started = time.monotonic()
                try:
                    client.get_token(AUDIENCE, [SCOPE])
                except Exception as exc:
                    with self._lock:
                        self.failures.append(f"{role}: {type(exc).__name__}: {exc}")
                took = time.monotonic() - started
                with self._lock:
                    self.calls[role] += 1
                    self.slowest = max(self.slowest, took)
                time.sleep(0.02 if role == "fetcher" else 0.005)


# -- 1. SIGKILL and restart of an issuer under load ---------------------------------------------
def test_sigkill_and_restart_of_an_issuer_under_load(deployment: Deployment) -> None:
    with replica(deployment.env, deployment.root) as issuer:
        load = Callers(f"{issuer.url}/oauth2/token", deployment.client_secret, 4, 2, max_seconds=45)
        load.start()
        try:
            _wait_for("load running", lambda: load.calls["fetcher"] >= 10, 30)
            issuer.kill()
            killed = time.monotonic()
            issuer.start()
            issuer.wait_ready()
            down = time.monotonic() - killed
            before = dict(load.calls)
            _wait_for("load after the restart", lambda: load.calls["fetcher"] >= before["fetcher"] + 10, 30)
        finally:
            load.join()
        print(
            f"\n[fault] SIGKILL+restart: issuer down {down:.2f}s; calls "
            f"holder={load.calls['holder']} fetcher={load.calls['fetcher']}; "
            f"failures={len(load.failures)}; slowest call {load.slowest:.2f}s"
        )
        assert load.failures == [], load.failures[:5]


# -- 2. SIGSTOP of moto_server for 20 s ---------------------------------------------------------
def _aws_issuer_env(aws: AwsDeployment, *, state: bool) -> tuple[dict[str, str], str]:  # noqa: F811
    env = dict(aws.env)
    if state:
        env["S2S_STATE"] = f"dynamodb://{aws.prefix}-state"
        result = aws.cli("state", "init", extra_env=env)
        assert result.returncode == 0, result.stderr
    aws.cli_json("keys", "init")
    secret = aws.cli_json("clients", "add", CLIENT_ID, "--audience", AUDIENCE, "--scope", SCOPE)[
        "client_secret"
    ]
    return env, secret


def test_sigstop_of_moto_for_20_seconds(aws: AwsDeployment, moto: MotoServer) -> None:  # noqa: F811
    env, secret = _aws_issuer_env(aws, state=True)
    with running_issuer(env, aws.root) as issuer:
        first, _ = _token(issuer.token_endpoint, CLIENT_ID, secret)
        assert first.status_code == 200, first.text
        health_slowest = 0.0
        health_statuses: set[int | None] = set()
        ready_seen: list[tuple[float, int | None, str]] = []
        tokens: list[tuple[float, int, float, str, str | None]] = []
        stop = threading.Event()

        def watch() -> None:
            nonlocal health_slowest
            while not stop.is_set():
                status, took, _ = _get(f"{issuer.url}/health", timeout=5)
                health_statuses.add(status)
                health_slowest = max(health_slowest, took)
                status, _, body = _get(f"{issuer.url}/ready", timeout=5)
                ready_seen.append((time.monotonic(), status, str((body or {}).get("reason", ""))))
                time.sleep(0.1)

        def request_tokens() -> None:
            while not stop.is_set():
                response, took = _token(issuer.token_endpoint, CLIENT_ID, secret)
                tokens.append(
                    (
                        time.monotonic(),
                        response.status_code,
                        took,
                        str(response.json().get("error", "")),
                        response.headers.get("retry-after"),
                    )
                )
                time.sleep(0.2)

        workers = [
            threading.Thread(target=watch, daemon=True),
            threading.Thread(target=request_tokens, daemon=True),
        ]
        stopped_at, resumed_at = _stop_while_running(
            moto.proc.pid, 20, workers, running=lambda: bool(ready_seen and tokens)
        )
        try:
            _wait_for(
                "/ready 200 after SIGCONT",
                lambda: bool(ready_seen) and ready_seen[-1][0] > resumed_at and ready_seen[-1][1] == 200,
                30,
                issuer.log,
            )
            _wait_for(
                "a token after SIGCONT",
                lambda: bool(tokens) and tokens[-1][0] > resumed_at and tokens[-1][1] == 200,
                30,
                issuer.log,
            )
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
        not_ready = [t for t, status, _ in ready_seen if t > stopped_at and status == 503]
        assert not_ready, "/ready never turned 503 while moto was stopped"
        flip = not_ready[0] - stopped_at
        back = next(t for t, status, _ in ready_seen if t > resumed_at and status == 200) - resumed_at
        during = [t for t in tokens if stopped_at + 0.5 < t[0] - t[2] and t[0] < resumed_at]
        reasons = {reason for t, status, reason in ready_seen if status == 503}
        print(
            f"\n[fault] SIGSTOP moto 20s: /health slowest {health_slowest:.3f}s "
            f"over {len(ready_seen)} probes; "
            f"/ready 503 after {flip:.2f}s, 200 again {back:.2f}s after SIGCONT; reasons {sorted(reasons)}; "
            f"token requests during the stop: {len(during)}, statuses {sorted({t[1] for t in during})}, "
            f"slowest {max((t[2] for t in during), default=0):.2f}s"
        )
        # Hung, /health would take the whole 20 s stop; answering at once takes ~0.2 s here when
        # the machine is quiet. The bound is generous so that a busy 2-core box does not fail it.
        assert health_statuses == {200} and health_slowest < 5.0
        assert flip < 6.0  # 1 s probe interval + 2 s probe timeout, with slack for a busy machine
        assert during and all(t[1] == 503 and t[3] == "temporarily_unavailable" and t[4] for t in during)
        # connect + read timeout (3 s) is the pool's deadline; a few seconds of slack for the machine.
        assert max(t[2] for t in during) < 6.0
        assert "Traceback" not in issuer.log.read_text(errors="replace")


# -- 3. moto_server restarted empty -------------------------------------------------------------
def test_moto_restarted_empty_replaces_no_keys_and_no_clients(
    aws: AwsDeployment,  # noqa: F811
    moto: MotoServer,  # noqa: F811
) -> None:
    env, secret = _aws_issuer_env(aws, state=False)
    with running_issuer(env, aws.root) as issuer:
        kids = issuer.jwks_kids()
        first, _ = _token(issuer.token_endpoint, CLIENT_ID, secret)
        assert first.status_code == 200
        moto.proc.send_signal(signal.SIGKILL)
        moto.proc.wait(timeout=10)
        port = moto.url.rsplit(":", 1)[1]
        log = aws.root / "moto-empty.log"
        with log.open("wb") as out:
            empty = subprocess.Popen(
                [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", port],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_ready(f"{moto.url}/moto-api/", empty, log, timeout=30)
            restarted = time.monotonic()
            text = lambda: issuer.log.read_text(errors="replace")  # noqa: E731

            def both_refused() -> bool:
                # The registry reloads when a request comes (at most once a second).
                response, _ = _token(issuer.token_endpoint, CLIENT_ID, secret)
                assert response.status_code == 200, response.text
                return (
                    "has no signing key any more" in text()
                    and "client registry" in text()
                    and ("keeping the last good 1 client(s)" in text())
                )

            seen = _wait_for("both refusals logged", both_refused, 30, issuer.log)
            for _ in range(10):  # a few more polls of the empty store (every 0.2 s)
                response, _ = _token(issuer.token_endpoint, CLIENT_ID, secret)
                assert response.status_code == 200, response.text
                time.sleep(0.2)
            assert issuer.jwks_kids() == kids
            status, _, body = _get(f"{issuer.url}/ready")
            assert status == 200, body
            assert aws.boto("secretsmanager").list_secrets()["SecretList"] == []  # nothing written back
            print(
                f"\n[fault] moto restarted empty: keyset and registry refusals logged {seen:.2f}s after the "
                f"restart; JWKS unchanged ({len(kids)} keys); tokens still 200; no secret written "
                f"({time.monotonic() - restarted:.1f}s observed)"
            )
        finally:
            stop_process(empty)


# -- 4. a read-only key store during a scheduled rotation -------------------------------------------
def test_read_only_key_store_during_a_scheduled_rotation(deployment: Deployment) -> None:
    env = {**deployment.env, "S2S_ROTATE_EVERY": "3"}
    keys = Path(env["S2S_KEYSTORE"].removeprefix("file://"))
    lock = keys / ".keyset.lock"
    # Tests run as root here, so file modes do not stop a write: a directory where the store's
    # lock file goes does (reads need no lock, writes do).
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
    lock.mkdir()
    with replica(env, deployment.root) as issuer:
        _, _, body = _get(f"{issuer.url}/ready")
        assert body is not None
        kid = body["kid"]
        waited = _wait_for(
            "the failed save reported",
            lambda: bool((_get(f"{issuer.url}/ready")[2] or {}).get("warnings")),
            30,
            issuer.logs[-1],
        )
        status, _, body = _get(f"{issuer.url}/ready")
        assert status == 200 and body is not None and body["kid"] == kid
        assert body["warnings"][0].startswith("scheduled rotation could not be saved")
        response, _ = _token(f"{issuer.url}/oauth2/token", CLIENT_ID, deployment.client_secret)
        assert response.status_code == 200, response.text
        log = issuer.logs[-1].read_text(errors="replace")
        assert "ERROR s2s.issuer.keys: scheduled rotation could not be saved" in log
        assert "unreachable" not in log
        lock.rmdir()
        back = _wait_for(
            "the rotation saved once the store is writable",
            lambda: (_get(f"{issuer.url}/ready")[2] or {}).get("kid") not in (None, kid),
            30,
            issuer.logs[-1],
        )
        _, _, body = _get(f"{issuer.url}/ready")
        assert body is not None and "warnings" not in body
        print(
            f"\n[fault] read-only key store: failed save reported {waited:.2f}s after start (ready 200, "
            f"tokens 200); rotation landed {back:.2f}s after the store became writable"
        )


# -- 5. SIGSTOP of a JWKS host for 20 s ----------------------------------------------------------------
# The verifier's settings: keys live 1 s (the issuer's max-age here), so the stop spans many expiries
# and every known-kid request past one is a stale-while-revalidate decision; a fetch may take 5 s in
# all (the default deadline); a failed fetch is not retried for 2 s after it ENDED.
JWKS_HTTP_TIMEOUT = 5.0
JWKS_COOLDOWN = 2.0
STOP_SECONDS = 20.0


class KnownKidCallers(BoundedLoad):
    """Callers of the resource service, each holding a token of a kid the verifier has cached."""

    def __init__(self, url: str, tokens: list[str], max_seconds: float) -> None:
        super().__init__(len(tokens), ceiling=max_seconds)
        self._url, self._tokens = url, iter(tokens)
        self.calls = 0
        self.failures: list[str] = []
        self.slowest = 0.0

    def _worker(self) -> None:
        with self._lock:
            token = next(self._tokens)
        with httpx.Client(trust_env=False, timeout=30) as http:
            while self._claim() is not None:
                started = time.monotonic()
                try:
                    response = http.get(self._url, headers={"Authorization": f"Bearer {token}"})
                    failure = None if response.status_code == 200 else f"HTTP {response.status_code}"
                    if failure:
                        failure += f" {response.headers.get('www-authenticate', '')}"
                except httpx.HTTPError as exc:
                    failure = type(exc).__name__
                took = time.monotonic() - started
                with self._lock:
                    self.calls += 1
                    self.slowest = max(self.slowest, took)
                    if failure:
                        self.failures.append(failure)
                time.sleep(0.01)


def _foreign_token(issuer: str) -> str:
    """A well-formed token for the resource, signed by a key no JWKS has (an unknown kid)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": CLIENT_ID,
        "client_id": CLIENT_ID,
        "scope": SCOPE,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
    }
    key = ec.generate_private_key(ec.SECP256R1())
    headers = {"kid": "unknown-" + secrets.token_hex(8), "typ": "at+jwt"}
    return jwt.encode(claims, key, algorithm="ES256", headers=headers)


def test_sigstop_of_a_jwks_host_for_20_seconds(deployment: Deployment) -> None:
    # Tokens outlive the stop; a demoted key stays published for max TTL + leeway (5 min here).
    env = {**deployment.env, "S2S_TOKEN_TTL": "300", "S2S_MAX_TOKEN_TTL": "300"}
    with running_issuer(env, deployment.root) as issuer:
        resource_env = {
            **env,
            "S2S_VERIFIER_ISSUER": issuer.url,
            "S2S_VERIFIER_AUDIENCE": AUDIENCE,
            "S2S_VERIFIER_JWKS_TTL": "1",  # also lowers jwks_min_ttl: the issuer's max-age=1 holds
            "S2S_VERIFIER_REFETCH_COOLDOWN": str(JWKS_COOLDOWN),
            "S2S_VERIFIER_HTTP_TIMEOUT": str(JWKS_HTTP_TIMEOUT),
            "S2S_VERIFIER_LEEWAY": "5",
        }
        with running_resource_service(resource_env, deployment.root) as resource:
            orders = f"{resource.url}/orders"

            def call(token: str) -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = httpx.get(
                    orders, headers={"Authorization": f"Bearer {token}"}, timeout=30, trust_env=False
                )
                return response, time.monotonic() - started

            tokens = []
            for _ in range(4):
                response, _ = _token(issuer.token_endpoint, CLIENT_ID, deployment.client_secret)
                assert response.status_code == 200, response.text
                tokens.append(response.json()["access_token"])
            old_kid = jwt.get_unverified_header(tokens[0])["kid"]
            assert call(tokens[0])[0].status_code == 200  # the verifier holds the issuer's keys
            assert call(_foreign_token(issuer.url))[0].status_code == 401  # unknown kid, host up

            load = KnownKidCallers(orders, tokens, max_seconds=120)
            health_slowest = 0.0
            health_statuses: set[int | None] = set()
            unknown: list[tuple[int, float, str | None]] = []
            stop = threading.Event()

            def rotate_twice() -> str:
                for _ in range(2):
                    result = deployment.cli("keys", "rotate", "--force", "--json", extra_env=env)
                    assert result.returncode == 0, result.stderr
                listed = deployment.cli_json("keys", "list")["keys"]
                kid: str = next(k["kid"] for k in listed if k["state"] == "current")
                assert kid != old_kid
                return kid

            def watch_health() -> None:
                nonlocal health_slowest
                while not stop.is_set():
                    status, took, _ = _get(f"{resource.url}/health", timeout=10)
                    health_statuses.add(status)
                    health_slowest = max(health_slowest, took)
                    time.sleep(0.1)

            watcher = threading.Thread(target=watch_health, daemon=True)
            load.start()
            watcher.start()
            resumed_at = stopped_at = 0.0
            try:
                load.wait_until(lambda: load.calls >= 50, lambda: "50 calls before the stop")
                os.kill(issuer.proc.pid, signal.SIGSTOP)
                stopped_at = time.monotonic()
                try:
                    # A key made while the host is stopped: the verifier cannot have seen it. Two
                    # forced rotations (the real CLI, beside the probes) make it the signer; the
                    # old keys stay published (previous).
                    rotations = ThreadPoolExecutor(1)
                    rotated = rotations.submit(rotate_twice)
                    while time.monotonic() - stopped_at < STOP_SECONDS:
                        response, took = call(_foreign_token(issuer.url))
                        unknown.append((response.status_code, took, response.headers.get("retry-after")))
                        time.sleep(0.5)
                    new_kid = rotated.result(timeout=60)
                    rotations.shutdown()
                finally:
                    os.kill(issuer.proc.pid, signal.SIGCONT)
                resumed_at = time.monotonic()
                calls_during_stop = load.calls

                fresh: list[str] = []

                def new_key_token() -> bool:
                    # The issuer reloads its store within a poll interval after SIGCONT.
                    response, _ = _token(issuer.token_endpoint, CLIENT_ID, deployment.client_secret)
                    assert response.status_code == 200, response.text
                    token: str = response.json()["access_token"]
                    fresh.append(token)
                    return jwt.get_unverified_header(token)["kid"] == new_kid

                _wait_for("a token of the new key", new_key_token, 30, issuer.log)
                recovered = _wait_for(
                    "the new key's token verifies", lambda: call(fresh[-1])[0].status_code == 200, 30
                )
                recovery = time.monotonic() - resumed_at
                after = load.calls
                load.wait_until(lambda: load.calls >= after + 50, lambda: "50 calls after recovery")
            finally:
                stop.set()
                load.join()
                watcher.join(30)
            refused_after, _ = call(_foreign_token(issuer.url))
            log = resource.log.read_text(errors="replace")
            failed_fetches = log.count("JWKS fetch for")
            print(
                f"\n[fault] SIGSTOP JWKS host {STOP_SECONDS:g}s: known-kid requests {load.calls} "
                f"({calls_during_stop} before SIGCONT), failures {len(load.failures)}, slowest "
                f"{load.slowest:.3f}s; unknown-kid requests during the stop {len(unknown)}, statuses "
                f"{sorted({u[0] for u in unknown})}, slowest {max((u[1] for u in unknown), default=0):.2f}s; "
                f"failed JWKS fetches {failed_fetches}; /health slowest {health_slowest:.3f}s; new key's "
                f"token verified {recovery:.2f}s after SIGCONT ({recovered:.2f}s after the issuer signed "
                f"with it)"
            )
        assert load.failures == [], load.failures[:5]
        # Served from the cached keys, never after waiting for a fetch (that takes the whole 5 s
        # deadline while the host is stopped); the bound leaves a busy machine its slack.
        assert load.slowest < JWKS_HTTP_TIMEOUT
        # An unknown kid: 401 while the last fetch succeeded (within its cooldown the verifier does
        # not refetch, the random-kid bound), then, once a fetch has failed, 503 + Retry-After.
        statuses = [u[0] for u in unknown]
        assert 503 in statuses and set(statuses[statuses.index(503) :]) == {503}, unknown
        assert set(statuses) <= {401, 503} and all(u[2] for u in unknown if u[0] == 503), unknown
        # An unknown kid waits at most the fetch in flight (deadline + 1 s), never the 20 s stop.
        assert max(u[1] for u in unknown) < JWKS_HTTP_TIMEOUT + 3
        assert health_statuses == {200} and health_slowest < JWKS_HTTP_TIMEOUT
        # One fetch at a time, the next only a cooldown after the END of a failed one: at most one
        # attempt per (deadline + cooldown) over the stop (counted from their start: one per 5 s).
        assert (
            1
            <= failed_fetches
            <= int((STOP_SECONDS + JWKS_HTTP_TIMEOUT) // (JWKS_HTTP_TIMEOUT + JWKS_COOLDOWN)) + 1
        )
        assert refused_after.status_code == 401  # the host answers: an unknown kid is the caller's
        assert "Traceback" not in log


# -- 6. SIGSTOP of moto_server for 20 s, S2S_STATE_FAILURE_MODE=local ----------------------------------
def test_sigstop_of_moto_with_the_local_state_failure_mode(aws: AwsDeployment, moto: MotoServer) -> None:  # noqa: F811
    keys = aws.root / "keys"
    env = {
        **aws.env,
        "S2S_KEYSTORE": f"file://{keys}",
        "S2S_CLIENTS": f"file://{keys / 'clients.json'}",
        "S2S_STATE": f"dynamodb://{aws.prefix}-state",
        "S2S_STATE_FAILURE_MODE": "local",
    }
    result = aws.cli("state", "init", extra_env=env)
    assert result.returncode == 0, result.stderr
    assert aws.cli("keys", "init", extra_env=env).returncode == 0
    added = aws.cli(
        "clients", "add", CLIENT_ID, "--audience", AUDIENCE, "--scope", SCOPE, "--json", extra_env=env
    )
    assert added.returncode == 0, added.stderr
    secret = json.loads(added.stdout)["client_secret"]
    with running_issuer(env, aws.root) as issuer:
        first, _ = _token(issuer.token_endpoint, CLIENT_ID, secret)
        assert first.status_code == 200, first.text
        ready_seen: list[tuple[float, int | None, list[str]]] = []
        tokens: list[tuple[float, float, int]] = []  # (sent, took, status)
        health_slowest = 0.0
        stop = threading.Event()

        def watch() -> None:
            nonlocal health_slowest
            while not stop.is_set():
                _, took, _ = _get(f"{issuer.url}/health", timeout=10)
                health_slowest = max(health_slowest, took)
                status, _, body = _get(f"{issuer.url}/ready", timeout=10)
                ready_seen.append((time.monotonic(), status, list((body or {}).get("warnings", []))))
                time.sleep(0.1)

        def request_tokens() -> None:
            while not stop.is_set():
                sent = time.monotonic()
                response, took = _token(issuer.token_endpoint, CLIENT_ID, secret)
                tokens.append((sent, took, response.status_code))
                time.sleep(0.1)

        workers = [
            threading.Thread(target=watch, daemon=True),
            threading.Thread(target=request_tokens, daemon=True),
        ]
        stopped_at, resumed_at = _stop_while_running(
            moto.proc.pid, STOP_SECONDS, workers, running=lambda: bool(ready_seen and tokens)
        )
        try:
            _wait_for(
                "/ready without the degraded warning after SIGCONT",
                lambda: bool(ready_seen) and ready_seen[-1][0] > resumed_at and not ready_seen[-1][2],
                30,
                issuer.log,
            )
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
        noticed = [t for t, _, warnings in ready_seen if any("degraded" in w for w in warnings)]
        assert noticed, "/ready never said degraded while moto was stopped"
        noticed_at = noticed[0]
        back = next(t for t, _, warnings in ready_seen if t > resumed_at and not warnings) - resumed_at
        during = [t for t in tokens if stopped_at < t[0] + t[1] and t[0] < resumed_at]  # overlapping it
        # Requests sent after the replica noticed the outage are served from its memory.
        after_notice = [t for t in during if t[0] > noticed_at + 0.5]
        refused = [t for t in during if t[2] != 200]
        log = issuer.log.read_text(errors="replace")
        print(
            f"\n[fault] SIGSTOP moto {STOP_SECONDS:g}s, state failure mode local: /ready statuses "
            f"{sorted({r[1] for r in ready_seen}, key=str)} over {len(ready_seen)} probes, degraded "
            f"{noticed_at - stopped_at:.2f}s after SIGSTOP, not degraded {back:.2f}s after SIGCONT; token "
            f"requests during the stop {len(during)} ({len(refused)} refused 503, all before the outage "
            f"was noticed), slowest {max((t[1] for t in during), default=0):.2f}s; /health slowest "
            f"{health_slowest:.3f}s"
        )
        assert {r[1] for r in ready_seen} == {200}  # never taken out of the load balancer
        assert after_notice and all(t[2] == 200 for t in after_notice), after_notice[:5]
        assert all(t[0] <= noticed_at + 0.5 for t in refused), refused
        assert log.count("checking rate limits, failure budgets and assertion replay") == 1
        assert log.count("back to the shared state") == 1
        assert health_slowest < JWKS_HTTP_TIMEOUT
        last, _ = _token(issuer.token_endpoint, CLIENT_ID, secret)
        assert last.status_code == 200
        assert "Traceback" not in log
