"""An emptied store never replaces keys or clients (issue 10 item 2).

Keys are created only by ``s2s keys init`` or on a first start that allows it; a replica that has
loaded a keyset keeps it when the store turns empty or missing, logs at ERROR and goes not ready
only when its keys could be past their use. A registry that turns empty or missing after having
clients is not adopted unless ``s2s clients`` emptied it (its marker).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from s2s.clock import FakeClock
from s2s.issuer import Client, FileClientRegistry, KeyManager, SecretsManagerClientRegistry
from s2s.keys import FileKeyStore, KeySet, RotationPolicy, ensure_keys, update_keyset
from tests.issuer.helpers import AUDIENCE, SECRET_HASH
from tests.support import MemoryKeyStore

POLICY = RotationPolicy()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("s2s")]


@pytest.mark.parametrize("run_rotation", [True, False])
def test_an_emptied_key_store_never_gets_new_keys(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, run_rotation: bool
) -> None:
    store = MemoryKeyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), POLICY))
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=run_rotation, create_keys=True)
    assert manager.refresh()
    kept = manager.keyset
    store.keyset, store.version = KeySet(), None  # deleted, wiped, or a moto restarted empty
    saves = store.saves
    for _ in range(3):
        clock.advance(POLICY.poll_interval)
        assert manager.refresh() is False
    assert store.saves == saves and len(store.keyset) == 0  # nothing written back
    assert manager.keyset == kept and manager.ready
    logged = errors(caplog)
    assert len(logged) == 1 and "keeping the last good keys" in logged[0]
    clock.advance(POLICY.previous_keep)  # now the kept keys could be past their use
    readiness = manager.readiness()
    assert not readiness and "empty or missing" in readiness.reason
    assert manager.keyset == kept  # still serving the JWKS it had


def test_the_schedule_never_creates_a_first_keyset_unless_allowed(clock: FakeClock) -> None:
    store = MemoryKeyStore()
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=True, create_keys=False)
    assert manager.refresh()
    assert store.saves == 0 and len(store.keyset) == 0 and not manager.ready


def test_an_emptied_key_file_keeps_the_replicas_keys(tmp_path: Path, clock: FakeClock) -> None:
    store = FileKeyStore(tmp_path / "keys")
    path = store.path
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), POLICY))
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=True, create_keys=True)
    assert manager.refresh()
    current = manager.current
    path.unlink()
    clock.advance(POLICY.poll_interval)
    assert manager.refresh() is False
    assert not path.exists() and manager.current == current


def _client(client_id: str) -> Client:
    return Client(client_id=client_id, audiences=(AUDIENCE,), secret_hash=SECRET_HASH)


def test_a_file_registry_that_turns_missing_or_empty_is_not_adopted(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "clients.json"
    cli = FileClientRegistry(path, clock=clock)
    cli.add(_client("svc"))
    served = FileClientRegistry(path, clock=clock, reload_interval=1)
    assert served.get("svc") is not None
    path.unlink()
    clock.advance(2)
    assert served.get("svc") is not None
    path.write_text(json.dumps({"format": "s2s.clients/1", "clients": []}))  # a blank restore
    path.chmod(0o600)  # restored as the registry must be (others' read access is refused anyway)
    clock.advance(2)
    assert served.get("svc") is not None
    assert len(errors(caplog)) == 2 and "keeping the last good 1 client(s)" in errors(caplog)[0]
    cli.add(_client("other"))
    clock.advance(2)
    assert served.get("other") is not None and served.get("svc") is None  # a real change is adopted


def test_a_registry_emptied_by_the_cli_is_adopted(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "clients.json"
    cli = FileClientRegistry(path, clock=clock)
    cli.add(_client("svc"))
    served = FileClientRegistry(path, clock=clock, reload_interval=1)
    assert served.get("svc") is not None
    cli.remove("svc")  # `s2s clients remove` of the last client: written with the marker
    clock.advance(2)
    assert served.get("svc") is None


def test_a_secrets_manager_registry_that_turns_missing_is_not_adopted(
    sm: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    name = "s2s/emptied-clients"
    SecretsManagerClientRegistry(name, sm, clock=clock, background=False).add(_client("svc"))
    served = SecretsManagerClientRegistry(name, sm, clock=clock, background=False, reload_interval=1)
    assert served.get("svc") is not None
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)  # a region restored empty
    clock.advance(2)
    assert served.get("svc") is not None
    sm.create_secret(Name=name, SecretString=json.dumps({"format": "s2s.clients/1", "clients": []}))
    clock.advance(2)
    assert served.get("svc") is not None
    assert errors(caplog) and all("keeping the last good" in e for e in errors(caplog))
    cli = SecretsManagerClientRegistry(name, sm, clock=clock, background=False)
    cli.add(_client("a"))
    cli.remove("a")  # emptied on purpose: the marker is written
    clock.advance(2)
    assert served.get("svc") is None
