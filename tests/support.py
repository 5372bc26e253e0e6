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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from s2s.errors import VersionConflict
from s2s.keys import KeySet
from s2s.keys.errors import KeyStoreError


class MemoryKeyStore:
    """A KeyStore in memory with compare-and-swap (it passes the key-store contract of
    tests/keys/test_store_contract.py), and a switch to make loads fail."""

    url = "memory://test"

    def __init__(self) -> None:
        self.keyset = KeySet()
        self.version: str | None = None
        self.counter = 0
        self.fail = False
        self.saves = 0
        self._lock = threading.Lock()

    def load(self) -> tuple[KeySet, str | None]:
        if self.fail:
            raise KeyStoreError("memory store is down")
        with self._lock:
            return self.keyset, self.version

    def save(self, keyset: KeySet, expected_version: str | None) -> str:
        with self._lock:
            if expected_version != self.version:
                raise VersionConflict("changed meanwhile")
            self.counter += 1
            self.keyset, self.version = keyset, str(self.counter)
            self.saves += 1
            return self.version


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
class RunningProcess:
    """A live server process on 127.0.0.1 started by :func:`running_process`."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        return log_tail(self.log)


@contextlib.contextmanager
def running_process(
    command: Callable[[int], Sequence[str]],
    *,
    name: str,
    workdir: Path,
    ready_path: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    startup_timeout: float = 30,
) -> Iterator[RunningProcess]:
    """The one harness for a server a test runs: ``command(port)`` on a free port of 127.0.0.1,
    output to ``workdir/NAME-PORT.log``, ready once ``ready_path`` answers 200; terminated (then
    killed after 10 s) when the ``with`` block ends, whatever happened in it."""
    port = free_port()
    log = workdir / f"{name}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(command(port)),
            cwd=cwd or workdir,
            env=None if env is None else {**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = RunningProcess(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_until_ready(running.url + ready_path, proc, log, timeout=startup_timeout)
        yield running
    finally:
        stop_process(proc)


@dataclass(frozen=True, slots=True)
class RunningIssuer(RunningProcess):
    """A live ``s2s serve`` process."""

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/oauth2/token"

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

    ``env`` is the whole environment of the server (S2S_* settings included). ``issuer_url`` sets
    ``S2S_ISSUER`` (replicas share one public URL); by default the issuer URL follows the port.
    """
    env = {k: v for k, v in env.items() if k != "S2S_ISSUER"}
    if issuer_url is not None:
        env["S2S_ISSUER"] = issuer_url

    def serve(port: int) -> list[str]:
        return [str(s2s_executable()), "serve", "--host", "127.0.0.1", "--port", str(port), *args]

    with running_process(
        serve, name="serve", workdir=workdir, ready_path="/ready", env=env, startup_timeout=startup_timeout
    ) as running:
        yield RunningIssuer(running.url, running.proc, running.log)


class BoundedLoad(abc.ABC):
    """Worker threads for a load test. The test stops the load (:meth:`join`) once the work it must
    see done is done (rotations completed, requests verified), never after a fixed window: on a
    busy machine the same work takes longer. ``ceiling`` seconds is only a safety net so that
    threads never outlive a test that fails to stop them; reaching it means the work was not done
    (:meth:`running` turns false and the waits report it). Subclasses send one request per
    :meth:`_claim`."""

    def __init__(self, threads: int, ceiling: float = 240.0) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._ceiling = ceiling
        self._deadline = 0.0
        self._threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(threads)]

    def start(self) -> None:
        self._deadline = time.monotonic() + self._ceiling
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "load threads did not stop"

    def running(self) -> bool:
        return not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    def wait_until(self, done: Callable[[], bool], what: Callable[[], str]) -> float:
        """Poll ``done`` while the load runs; the seconds it took. Fails, saying ``what()``, only
        if the load stopped (its ceiling reached, a worker died) before the work was done."""
        began = time.monotonic()
        while not done():
            assert self.running(), f"the load stopped (ceiling {self._ceiling:g}s) before {what()}"
            time.sleep(0.02)
        return time.monotonic() - began

    @property
    def sent(self) -> int:
        with self._lock:
            return self._sent

    def _claim(self) -> int | None:
        """The number of the next request, or None when the load is over."""
        with self._lock:
            if self._stop.is_set() or time.monotonic() >= self._deadline:
                return None
            self._sent += 1
            return self._sent

    @abc.abstractmethod
    def _worker(self) -> None: ...
