"""The key-store contract, run against every store: file, AWS Secrets Manager (moto) and the
in-memory double the issuer tests use. Store-specific behaviour (file modes, crash safety, staging
labels) is tested beside each store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from s2s.errors import VersionConflict
from s2s.keys import (
    FileKeyStore,
    KeySet,
    KeyState,
    KeyStore,
    SecretsManagerKeyStore,
    generate_key,
    update_keyset,
)
from tests.support import MemoryKeyStore

OpenStore = Callable[[], KeyStore]


def retired(*nows: float) -> KeySet:
    return KeySet(tuple(generate_key(now=now, state=KeyState.RETIRED) for now in nows))


@pytest.fixture(params=["file", "secrets-manager", "memory"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """A way to open the same store again, as a second writer (another process or replica) would."""
    if request.param == "file":
        yield lambda: FileKeyStore(tmp_path / "keys")
    elif request.param == "secrets-manager":
        request.getfixturevalue("mock_aws")
        # Each handle gets its own client, as separate processes would.
        yield lambda: SecretsManagerKeyStore(
            "s2s/contract", boto3.client("secretsmanager", region_name="us-east-1")
        )
    else:
        shared = MemoryKeyStore()
        yield lambda: shared


def test_an_empty_store_loads_as_an_empty_keyset(open_store: OpenStore) -> None:
    store = open_store()
    assert isinstance(store, KeyStore) and store.url
    assert store.load() == (KeySet(), None)


def test_save_is_a_compare_and_swap(open_store: OpenStore) -> None:
    store = open_store()
    first_keys = retired(1.0)
    first = store.save(first_keys, None)
    assert store.load() == (first_keys, first)
    with pytest.raises(VersionConflict):
        store.save(retired(2.0), None)  # someone created it already
    second_keys = retired(1.0, 2.0)
    second = store.save(second_keys, first)
    assert second != first and store.load() == (second_keys, second)


def test_a_stale_writer_loses_and_changes_nothing(open_store: OpenStore) -> None:
    a, b = open_store(), open_store()
    base = a.save(retired(1.0), None)
    winner = retired(1.0, 2.0)
    won = a.save(winner, base)
    with pytest.raises(VersionConflict):
        b.save(retired(3.0), base)  # read `base`, but the store has moved on
    assert a.load() == b.load() == (winner, won)


def test_update_keyset_retries_after_a_conflict(open_store: OpenStore) -> None:
    store, other = open_store(), open_store()
    store.save(KeySet(), None)
    sneaky, mine = retired(1.0), retired(2.0)
    calls = 0

    def change(keyset: KeySet) -> KeySet:
        nonlocal calls
        calls += 1
        if calls == 1:  # another writer gets in between our load and our save
            other.save(keyset.add(*sneaky), other.load()[1])
        return keyset.add(*mine)

    result = update_keyset(store, change)
    assert calls == 2 and len(result) == 2 and store.load()[0] == result


def test_concurrent_writers_lose_no_key(open_store: OpenStore) -> None:
    open_store().save(KeySet(), None)
    per_writer = 8
    keys = {n: [generate_key(now=float(i), state=KeyState.RETIRED) for i in range(per_writer)] for n in "ab"}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        store = open_store()
        start.wait()
        try:
            for key in keys[name]:
                update_keyset(store, lambda ks, key=key: ks.add(key), attempts=1000)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    final, _ = open_store().load()
    assert {k.kid for k in final} == {k.kid for ks in keys.values() for k in ks}


def test_every_state_and_algorithm_round_trips(
    open_store: OpenStore, one_key_per_alg: dict[str, Any]
) -> None:
    states = list(KeyState)
    keys = tuple(
        key.with_state(states[i % len(states)], created_at=float(i))
        for i, key in enumerate(one_key_per_alg.values())
    )
    store = open_store()
    version = store.save(KeySet(keys), None)
    assert open_store().load() == (KeySet(keys), version)
