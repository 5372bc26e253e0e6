"""A newcomer's first run: ``dev.py`` and ``s2s serve --demo`` as real processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s2s.jose import b64url_decode
from tests.support import free_port, log_tail, stop_process, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _printed_commands(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("fetch a token"))
    return [line.strip() for line in lines[start:] if line.startswith("  ")]


def test_demo_commands_run_as_printed_and_keep_the_secret_out_of_argv(tmp_path: Path) -> None:
    # The reader's checkout: a .venv below the directory the commands are run from.
    (tmp_path / ".venv").symlink_to(VENV, target_is_directory=True)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [".venv/bin/s2s", "serve", "--demo", "--port", str(port)],
            cwd=tmp_path,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/ready", proc, log)
        text = log.read_text()
        secret = next(x for x in text.splitlines() if "client_secret=" in x).split("client_secret=")[1]
        commands = _printed_commands(text)
        export, token_cmd, curl_cmd = commands
        assert export == f"export S2S_CLIENT_SECRET={secret}"
        assert token_cmd.startswith(".venv/bin/s2s token ") and secret not in token_cmd
        assert secret not in curl_cmd

        def as_printed(command: str) -> subprocess.CompletedProcess[str]:
            # A shell in the reader's directory: the export line, then the command.
            return subprocess.run(
                ["sh", "-c", f"{export}\n{command}"],
                check=False,
                cwd=tmp_path,
                env=_clean_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )

        got = as_printed(token_cmd)
        assert got.returncode == 0, got.stderr
        assert got.stdout.count(".") == 2 and got.stdout.startswith("eyJ")
        if shutil.which("curl"):
            got = as_printed(curl_cmd)
            assert got.returncode == 0 and '"access_token":"eyJ' in got.stdout, got.stdout + got.stderr
    finally:
        stop_process(proc)


def test_serve_on_a_taken_port_says_so_in_one_line_before_anything_else(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        got = subprocess.run(
            [str(VENV / "bin" / "s2s"), "serve", "--demo", "--port", str(port)],
            check=False,
            cwd=tmp_path,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert got.returncode == 1
    assert got.stderr.count("\n") == 1 and got.stderr.startswith("s2s: error: ")
    assert f"127.0.0.1:{port}" in got.stderr and "--port" in got.stderr
    # It bound first: no key was made, no secret printed, nothing said it is ready.
    assert got.stdout == "" and not (tmp_path / "keys").exists()


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text().strip():
        assert proc.poll() is None, log_tail(log)
        assert time.monotonic() < deadline, log_tail(log)
        time.sleep(0.05)
    return path.read_text().strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a parent that is gone) counts as stopped.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_dev_py_forwards_a_stop_signal_to_its_child(tmp_path: Path, signum: int) -> None:
    """``run_child`` is what ``dev.py issuer`` runs ``s2s serve`` with: stopping dev.py stops it."""
    pid_file = tmp_path / "child.pid"
    child = (
        "import os, pathlib, signal, sys, time\n"
        # Both handlers explicit: a process started from a background job inherits SIGINT ignored,
        # and Python then never raises KeyboardInterrupt (the forwarded signal would be lost).
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(0))\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
        "time.sleep(120)\n"
    )
    runner = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import dev\n"
        f"sys.exit(dev.run_child([sys.executable, '-c', {child!r}], dict()))\n"
    )
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", runner], stdout=out, stderr=subprocess.STDOUT)
    try:
        child_pid = int(_wait_for_file(pid_file, proc, log))
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0, log_tail(log)
        deadline = time.monotonic() + 10
        while _alive(child_pid):
            assert time.monotonic() < deadline, "the child outlived dev.py"
            time.sleep(0.05)
    finally:
        stop_process(proc)
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_serve_with_two_workers_shares_keys_and_clients(tmp_path: Path) -> None:
    import httpx

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV / "bin" / "s2s"), "serve", "--demo", "--workers", "2", "--port", str(port)],
            cwd=tmp_path,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log_tail(log)
            time.sleep(0.1)
        wait_until_ready(f"{url}/ready", proc, log)
        text = log.read_text()
        secret = next(x for x in text.splitlines() if "client_secret=" in x).split("client_secret=")[1]
        assert text.count("Started server process") == 2
        kids = set()
        # New connections each time: the kernel spreads them over both workers' accept().
        for _ in range(20):
            with httpx.Client(trust_env=False) as http:
                answer = http.post(
                    f"{url}/oauth2/token",
                    data={"grant_type": "client_credentials", "audience": "https://api.example.internal"},
                    auth=("demo", secret),
                )
                assert answer.status_code == 200, answer.text
                header = answer.json()["access_token"].split(".")[0]
                kids.add(json.loads(b64url_decode(header))["kid"])
        assert len(kids) == 1  # one key store: every worker signs with the same current key
    finally:
        stop_process(proc)
    assert "Finished server process" in log.read_text()
