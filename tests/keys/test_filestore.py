from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s2s.keys import FileKeyStore, KeySet, KeyState, generate_key, open_keystore
from s2s.keys.errors import KeyStoreError

ROOT = Path(__file__).resolve().parents[2]


def one_key(now: float = 0.0, state: KeyState = KeyState.RETIRED) -> KeySet:
    return KeySet((generate_key(now=now, state=state),))


def test_loading_an_empty_store_creates_nothing(tmp_path: Path) -> None:
    # The rest of the compare-and-swap contract: test_store_contract.py.
    assert FileKeyStore(tmp_path / "keys").load() == (KeySet(), None)
    assert not (tmp_path / "keys").exists()


def test_save_creates_private_directory_and_file(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "a" / "keys")
    keyset = one_key()
    old_umask = os.umask(0o022)
    try:
        version = store.save(keyset, None)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "a" / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    data = store.path.read_bytes()
    assert version == hashlib.sha256(data).hexdigest()
    assert store.load() == (keyset, version)
    # A second save keeps the mode (the file is replaced, not rewritten in place).
    store.save(one_key(1.0), version)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert not list(store.directory.glob(".keyset.*.tmp"))


def test_existing_directory_mode_is_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    FileKeyStore(tmp_path).save(one_key(), None)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "keyset.json").stat().st_mode) == 0o600


def test_open_keystore_urls(tmp_path: Path) -> None:
    store = open_keystore(f"file://{tmp_path}")
    assert isinstance(store, FileKeyStore) and store.directory == tmp_path
    bare = open_keystore(str(tmp_path))
    assert isinstance(bare, FileKeyStore) and bare.directory == tmp_path


def test_corrupt_file_is_a_clear_error_without_its_content(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path)
    key = generate_key(now=0.0, state=KeyState.CURRENT)
    assert key.private_jwk is not None
    secret = str(key.private_jwk["d"])
    text = json.dumps(KeySet((key,)).to_document())
    for broken in (
        text[: len(text) // 2],
        text.replace('"format"', '"fmt"'),
        text.replace(key.kid, "x" * 43),
    ):
        store.path.write_text(broken)
        store.path.chmod(0o600)
        with pytest.raises(KeyStoreError) as info:
            store.load()
        assert str(store.path) in str(info.value)
        assert secret not in str(info.value)
        assert secret not in repr(info.value)
    store.path.write_bytes(b"\xff\xfe" + secret.encode())
    with pytest.raises(KeyStoreError, match="not valid JSON") as info:
        store.load()
    assert secret not in str(info.value)


def test_a_directory_in_place_of_the_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "keyset.json").mkdir()
    with pytest.raises(KeyStoreError, match="is a directory"):
        FileKeyStore(tmp_path).load()


def test_a_file_in_place_of_the_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "keys").write_text("")
    with pytest.raises(KeyStoreError, match="not a directory"):
        FileKeyStore(tmp_path / "keys").save(KeySet(), None)


def test_two_processes_adding_keys_lose_none(tmp_path: Path) -> None:
    per_process = 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.keys.writer", "add", str(tmp_path), label, str(per_process)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for label in ("a", "b")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    final, _ = FileKeyStore(tmp_path).load()
    assert len(final) == 2 * per_process


def test_a_writer_killed_at_any_instant_leaves_a_valid_keyset(tmp_path: Path) -> None:
    """SIGKILL a writer that rewrites the keyset in a loop, 20 times at random instants."""
    rng = random.Random(7)
    store = FileKeyStore(tmp_path)
    seen_sizes: set[int] = set()
    for _ in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.keys.writer", "churn", str(tmp_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        keyset, version = store.load()  # raises if the file were partial or corrupt
        assert version is not None
        assert len(keyset) in (8, 40)
        seen_sizes.add(len(keyset))
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    # The writer really was interrupted in both states, not only between runs.
    assert seen_sizes == {8, 40}
    # A temporary file left by a killed writer is removed by the next successful save.
    (tmp_path / ".keyset.deadbeef.tmp").write_text("partial")
    keyset, version = store.load()
    store.save(keyset, version)
    assert not list(tmp_path.glob(".keyset.*.tmp"))
