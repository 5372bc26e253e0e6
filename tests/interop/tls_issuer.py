"""A real ``s2s serve`` over HTTPS on 127.0.0.1 (test CA), and the ``s2s`` CLI that prepares it.

Every client test in this directory talks to this process exactly as a deployment would: the key
store and the client registry are made by the real CLI (``s2s keys init``, ``s2s clients add``),
then ``s2s serve --ssl-certfile --ssl-keyfile`` runs until the test's ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import S2SCli
from tests.support import free_port, log_tail, s2s_executable, stop_process
from tests.support_tls import LocalCA

__all__ = ["IssuerDir", "TlsIssuer", "serve_tls"]


@dataclass(frozen=True, slots=True)
class IssuerDir(S2SCli):
    """A key store and a client registry in ``root``, and the environment pointing at them."""

    @classmethod
    def create(cls, root: Path, **settings: str) -> IssuerDir:
        keys = root / "keys"
        env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
        env.update(
            {
                "S2S_KEYSTORE": f"file://{keys}",
                "S2S_CLIENTS": f"file://{keys / 'clients.json'}",
                # Tests send bursts from one client; the per-client limit is tested elsewhere.
                "S2S_RATE_LIMIT": "100000",
                "S2S_RATE_BURST": "100000",
                **{f"S2S_{k.upper()}": v for k, v in settings.items()},
            }
        )
        made = cls(root, env)
        made.cli_json("keys", "init")
        return made

    def add_client(self, client_id: str, *args: str) -> dict[str, Any]:
        """``s2s clients add CLIENT_ID ARGS --json``: the public record (and ``client_secret``)."""
        record: dict[str, Any] = self.cli_json("clients", "add", client_id, *args)
        return record


@dataclass(frozen=True)
class TlsIssuer:
    url: str  # the issuer URL (may have a path)
    origin: str  # https://127.0.0.1:PORT (health, readiness)
    ca: LocalCA
    proc: subprocess.Popen[bytes] = field(repr=False)
    log: Path

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/oauth2/token"

    def http(self) -> httpx.Client:
        return httpx.Client(verify=self.ca.client_context(), trust_env=False, timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve_tls(
    issuer_dir: IssuerDir,
    ca: LocalCA,
    *,
    via_env: bool = False,
    issuer_path: str = "",
    startup_timeout: float = 30,
) -> Iterator[TlsIssuer]:
    """``s2s serve`` with the test CA's server certificate on a free port of 127.0.0.1 (options, or
    ``S2S_SSL_*`` with ``via_env``); ready once ``/ready`` answers 200 over HTTPS; stopped on exit.
    ``issuer_path`` (e.g. ``/s2s``) sets ``S2S_ISSUER`` to an issuer URL with that path."""
    port = free_port()
    env = dict(issuer_dir.env)
    origin = f"https://127.0.0.1:{port}"
    if issuer_path:
        env["S2S_ISSUER"] = origin + issuer_path
    args = [str(s2s_executable()), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if via_env:
        env["S2S_SSL_CERTFILE"], env["S2S_SSL_KEYFILE"] = str(ca.cert_path), str(ca.key_path)
    else:
        args += ["--ssl-certfile", str(ca.cert_path), "--ssl-keyfile", str(ca.key_path)]
    log = issuer_dir.root / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=issuer_dir.root,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = TlsIssuer(origin + issuer_path, origin, ca, proc, log)
    try:
        deadline = time.monotonic() + startup_timeout
        with running.http() as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{origin}/ready", timeout=1).status_code == 200:
                        break
                assert proc.poll() is None, f"s2s serve exited with {proc.returncode}:\n{log_tail(log)}"
                assert time.monotonic() < deadline, (
                    f"s2s serve not ready in {startup_timeout}s:\n{log_tail(log)}"
                )
                time.sleep(0.05)
        yield running
    finally:
        stop_process(proc)
