"""Helpers shared by tests (fixtures live in conftest.py files): ports, and real processes on
127.0.0.1 that the test which started them also stops."""

from __future__ import annotations

import abc
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def s2s_executable() -> Path:
    return Path(sys.executable).parent / "s2s"


def log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, wait, and kill if it does not stop in 10 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_until_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Poll ``url`` until it answers 200; fail with the process's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        assert proc.poll() is None, f"{proc.args!r} exited with {proc.returncode}:\n{log_tail(log)}"
        assert time.monotonic() < deadline, f"{url} not ready in {timeout}s:\n{log_tail(log)}"
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class RunningIssuer:
    """A live ``s2s serve`` process."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/oauth2/token"

    def log_tail(self) -> str:
        return log_tail(self.log)

    def jwks_kids(self) -> list[str]:
        response = httpx.get(self.jwks_uri, timeout=5, trust_env=False)
        response.raise_for_status()
        return [key["kid"] for key in response.json()["keys"]]


@contextlib.contextmanager
def running_issuer(
    env: dict[str, str],
    workdir: Path,
    *args: str,
    startup_timeout: float = 30,
    issuer_url: str | None = None,
) -> Iterator[RunningIssuer]:
    """Run ``s2s serve ARGS`` on a free port of 127.0.0.1 until /ready answers 200; stop it on exit.

    ``env`` is the whole environment of the server (S2S_* settings included); output goes to
    ``workdir/serve-PORT.log``. The server is terminated, and killed if it does not stop in 10 s.
    ``issuer_url`` sets ``S2S_ISSUER`` (replicas share one public URL); by default the issuer URL
    follows the port: http://127.0.0.1:PORT.
    """
    port = free_port()
    log = workdir / f"serve-{port}.log"
    env = {**env, "PYTHONUNBUFFERED": "1"}
    env.pop("S2S_ISSUER", None)
    if issuer_url is not None:
        env["S2S_ISSUER"] = issuer_url
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(s2s_executable()), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    issuer = RunningIssuer(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_until_ready(f"{issuer.url}/ready", proc, log, timeout=startup_timeout)
        yield issuer
    finally:
        stop_process(proc)


class BoundedLoad(abc.ABC):
    """Worker threads for a load test that stops by itself: when told, after ``max_requests``
    requests, or after ``max_seconds``. Subclasses send one request per :meth:`_claim`."""

    def __init__(self, threads: int, max_requests: int, max_seconds: float) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._max_requests = max_requests
        self._max_seconds = max_seconds
        self._deadline = 0.0
        self._threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(threads)]

    def start(self) -> None:
        self._deadline = time.monotonic() + self._max_seconds
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "load threads did not stop"

    def running(self) -> bool:
        return not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    def _claim(self) -> int | None:
        """The number of the next request, or None when the load is over."""
        with self._lock:
            if self._stop.is_set() or self._sent >= self._max_requests or time.monotonic() >= self._deadline:
                return None
            self._sent += 1
            return self._sent

    @abc.abstractmethod
    def _worker(self) -> None: ...
