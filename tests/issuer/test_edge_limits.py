"""The edges of ``s2s serve`` (issue 9, "Also close these"), through a real server: a body-read
deadline on the token route, uvicorn connection limits, private key files."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.issuer.edge_support import edge_env, edge_issuer
from tests.support import free_port, running_issuer, s2s_executable


def _read_response(sock: socket.socket, *, trickle: bytes = b"", within: float = 30.0) -> bytes:
    """Read until the server closes, sending one byte of ``trickle`` every 0.2 s meanwhile."""
    data = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        elif trickle and not data:
            sock.sendall(trickle[:1])
            trickle = trickle[1:]
    raise AssertionError(f"no complete answer in {within}s: {data!r}")


def test_a_trickling_body_gets_408_not_a_hung_worker(tmp_path: Path) -> None:
    with edge_issuer(tmp_path, body_timeout="1") as edge:
        body = b"grant_type=client_credentials&audience=x" + b"&pad=" + b"a" * 400
        with socket.create_connection(("127.0.0.1", edge.port), timeout=30) as sock:
            sock.sendall(
                b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n"
                + b"Content-Type: application/x-www-form-urlencoded\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:5]
            )
            answer = _read_response(sock, trickle=body[5:])
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert json.loads(payload) == {
            "error": "invalid_request",
            "error_description": "the token request body was not received in time",
        }
        assert b"cache-control: no-store" in head.lower()
        assert httpx.get(f"{edge.issuer.url}/health", trust_env=False).status_code == 200


def test_serve_limits_connections_and_idle_keep_alive(tmp_path: Path) -> None:
    env = edge_env(tmp_path)
    with running_issuer(env, tmp_path, "--limit-concurrency", "3", "--timeout-keep-alive", "1") as issuer:
        port = int(issuer.url.rsplit(":", 1)[1])
        # An idle keep-alive connection is closed by the server.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while not first.endswith(b'{"status":"ok"}'):
                chunk = sock.recv(65536)
                assert chunk, first
                first += chunk
            assert first.startswith(b"HTTP/1.1 200")
            assert _read_response(sock, within=20) == b""  # closed after the keep-alive timeout
        # Connections beyond the limit are answered 503 (the held ones occupy the slots).
        held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(3)]
        try:
            time.sleep(0.3)  # let the server accept them (not a speed assertion: only ordering)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as extra:
                extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert _read_response(extra).startswith(b"HTTP/1.1 503")
        finally:
            for sock in held:
                sock.close()


def _serve_fails(env: dict[str, str], workdir: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [str(s2s_executable()), "serve", "--port", str(free_port())],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stderr


def test_key_files_others_can_read_are_refused_with_one_line(tmp_path: Path) -> None:
    env = edge_env(tmp_path)
    with running_issuer(env, tmp_path):  # first start: keys and the state file are made private
        pass
    keys = tmp_path / "keys"
    assert keys.stat().st_mode & 0o777 == 0o700
    assert (keys / "keyset.json").stat().st_mode & 0o777 == 0o600
    assert (keys / "state.sqlite3").stat().st_mode & 0o777 == 0o600
    (keys / "clients.json").write_text('{"format": "s2s.clients/1", "clients": []}\n')
    os.chmod(keys / "clients.json", 0o600)
    for name in ("keyset.json", "clients.json"):
        path = keys / name
        os.chmod(path, 0o644)
        code, err = _serve_fails(env, tmp_path)
        lines = err.strip().splitlines()
        assert code != 0 and len(lines) == 1, err
        assert (
            lines[0].startswith("s2s: error:") and str(path) in lines[0] and f"chmod 600 {path}" in lines[0]
        )
        assert "PRIVATE" not in err and '"d"' not in err
        os.chmod(path, 0o600)
    os.chmod(keys / "keyset.json", 0o640)
    with running_issuer({**env, "S2S_ALLOW_INSECURE_KEY_FILES": "1"}, tmp_path) as issuer:
        assert httpx.get(issuer.jwks_uri, trust_env=False).status_code == 200
