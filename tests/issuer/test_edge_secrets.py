"""Secrets cannot starve the issuer's CPU (issue 9, item 3).

New secrets are stored under a fast hash; scrypt hashes of earlier versions are verified once and
upgraded through the registry's compare-and-swap update; the remaining slow work has a bounded
queue answering 503 + Retry-After.
"""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path

import anyio
import pytest

from s2s.issuer import Client, FileClientRegistry, TemporarilyUnavailable
from s2s.issuer._secret_hash import hash_secret_scrypt
from s2s.litestar.issuer import _HashPool
from tests.issuer.edge_support import AUD, basic, edge_env
from tests.support import running_issuer


def test_a_legacy_scrypt_hash_is_upgraded_after_one_success(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "clients.json"
    secret = secrets.token_urlsafe(32)
    registry = FileClientRegistry(path)
    registry.add(Client(client_id="old", audiences=(AUD,), secret_hash=hash_secret_scrypt(secret)))
    registry.add(Client(client_id="old2", audiences=(AUD,), secret_hash=hash_secret_scrypt(secret)))

    def stored(client_id: str) -> str:
        doc = json.loads(path.read_text())
        return str(next(c["secret_hash"] for c in doc["clients"] if c["client_id"] == client_id))

    import httpx

    with running_issuer(edge_env(tmp_path), tmp_path) as issuer:
        form = {"grant_type": "client_credentials", "audience": AUD}

        def post(client_id: str, presented: str) -> httpx.Response:
            return httpx.post(
                issuer.token_endpoint,
                data=form,
                headers={"Authorization": basic(client_id, presented)},
                trust_env=False,
                timeout=30,
            )

        assert post("old2", secret + "x").status_code == 401
        assert stored("old2").startswith("scrypt$")  # a failure changes nothing
        assert post("old", secret).status_code == 200
        assert stored("old").startswith("sha256$")
        assert stored("old2").startswith("scrypt$")
        assert post("old", secret).status_code == 200  # the new hash works
        assert post("old", secret + "x").status_code == 401
        log = issuer.log.read_text()
        assert "upgraded" in log and secret not in log


@pytest.mark.anyio
async def test_the_slow_hash_queue_is_bounded_and_answers_503() -> None:
    pool = _HashPool(1, queue=1)
    release = threading.Event()
    started = threading.Event()

    def slow() -> bool:
        started.set()
        return release.wait(30)

    results: list[bool] = []

    async def run() -> None:
        results.append(await pool(slow))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)  # running
        tg.start_soon(run)  # waiting
        await anyio.to_thread.run_sync(started.wait, 30)
        await anyio.sleep(0)
        with pytest.raises(TemporarilyUnavailable) as refused:
            await pool(slow)  # a third would queue without bound: refused at once
        assert refused.value.status_code == 503 and refused.value.headers["Retry-After"]
        release.set()
    assert results == [True, True]
    assert await pool(lambda: True)  # room again


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
