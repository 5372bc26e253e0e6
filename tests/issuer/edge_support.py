"""A real ``s2s serve`` with registered clients, and raw HTTP to it from chosen source addresses.

Linux routes all of 127.0.0.0/8 to loopback, so a test can send from 127.0.0.2, 127.0.0.3, ... to
play callers on other machines without any proxy header.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from s2s.issuer import Client, FileClientRegistry, new_client
from tests.issuer.helpers import PkjClient, make_pkj
from tests.support import RunningIssuer, running_issuer

AUD = "https://orders.internal"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Edge:
    issuer: RunningIssuer
    secrets: dict[str, str]
    pkj: PkjClient
    workdir: Path

    @property
    def port(self) -> int:
        return int(self.issuer.url.rsplit(":", 1)[1])

    def post(
        self,
        form: dict[str, str],
        *,
        authorization: str | None = None,
        source: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=(source, 0))
        try:
            sent = {"Content-Type": "application/x-www-form-urlencoded", "Connection": "close"}
            if authorization is not None:
                sent["Authorization"] = authorization
            conn.request(
                "POST", "/oauth2/token", body=urlencode(form).encode(), headers={**sent, **(headers or {})}
            )
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def token(self, client_id: str, secret: str | None = None, *, source: str = "127.0.0.1") -> Reply:
        return self.post(
            {"grant_type": "client_credentials", "audience": AUD},
            authorization=basic(client_id, secret if secret is not None else self.secrets[client_id]),
            source=source,
        )

    def log(self) -> str:
        return self.issuer.log.read_text(errors="replace")


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def write_clients(path: Path, secret_ids: tuple[str, ...], pkj: PkjClient) -> dict[str, str]:
    registry = FileClientRegistry(path)
    secrets: dict[str, str] = {}
    for client_id in secret_ids:
        client, secret = new_client(client_id, audiences=[AUD], scopes=["orders:read"])
        assert secret is not None
        registry.add(client)
        secrets[client_id] = secret
    registry.add(Client(client_id=pkj.client_id, audiences=(AUD,), jwks=(pkj.public_jwk,)))
    return secrets


def edge_env(workdir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    env.update(
        S2S_KEYSTORE=f"file://{workdir / 'keys'}",
        S2S_CLIENTS=f"file://{workdir / 'keys' / 'clients.json'}",
    )
    env.update({f"S2S_{k.upper()}": v for k, v in settings.items()})
    return env


@contextlib.contextmanager
def edge_issuer(
    workdir: Path, *, secret_ids: tuple[str, ...] = ("victim", "other"), **settings: str
) -> Iterator[Edge]:
    pkj = make_pkj("pkj-victim")
    secrets = write_clients(workdir / "keys" / "clients.json", secret_ids, pkj)
    with running_issuer(edge_env(workdir, **settings), workdir) as issuer:
        yield Edge(issuer, secrets, pkj, workdir)
