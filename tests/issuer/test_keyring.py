"""The KeyManager: reloads, the replica's own schedule, CAS races, and failures that keep old keys."""

from __future__ import annotations

import json
import logging

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.issuer import KeyManager
from s2s.keys import KeySet, KeyState, RotationPolicy, ensure_keys, revoke, rotate, update_keyset
from s2s.litestar.issuer import IssuerRuntime
from s2s.observe.prometheus import PrometheusObserver
from tests.support import MemoryKeyStore

POLICY = RotationPolicy()


def seeded(clock: FakeClock) -> MemoryKeyStore:
    store = MemoryKeyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), POLICY))
    return store


def test_reload_picks_up_a_rotation_by_another_writer(clock: FakeClock) -> None:
    store = seeded(clock)
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=False)
    assert manager.refresh() and manager.ready
    first = manager.current
    assert first is not None
    clock.advance(POLICY.publish_lead)
    update_keyset(store, lambda ks: rotate(ks, clock.now(), POLICY))  # e.g. `s2s keys rotate`
    assert manager.current == first  # nothing changes until the next reload
    assert manager.refresh()
    assert manager.current is not None and manager.current.kid != first.kid
    served = {k["kid"] for k in json.loads(manager.jwks_bytes)["keys"]}
    assert first.kid in served and manager.current.kid in served  # the old key is now previous


def test_schedule_rotates_and_saves(clock: FakeClock) -> None:
    store = seeded(clock)
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=True)
    manager.refresh()
    first = manager.current
    assert first is not None
    saves = store.saves
    clock.advance(POLICY.poll_interval)
    manager.refresh()
    assert store.saves == saves  # nothing due: no write
    clock.advance(POLICY.rotate_every)
    manager.refresh()
    assert store.saves == saves + 1
    assert manager.current is not None and manager.current.kid != first.kid
    assert store.keyset == manager.keyset and store.version == manager.version


def test_losing_a_cas_race_adopts_the_winner(clock: FakeClock) -> None:
    class RacyStore(MemoryKeyStore):
        """Another replica saves its rotation between our load and our save."""

        def __init__(self) -> None:
            super().__init__()
            self.rival: KeySet | None = None

        def save(self, keyset: KeySet, expected_version: str | None) -> str:
            if self.rival is not None:
                rival, self.rival = self.rival, None
                super().save(rival, self.version)
            return super().save(keyset, expected_version)

    store = RacyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), POLICY))
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=True)
    manager.refresh()
    clock.advance(POLICY.rotate_every)
    store.rival = rotate(store.keyset, clock.now(), POLICY)
    assert manager.refresh()
    # Our own rotation lost the race and was dropped; the rival's keyset is what we serve, intact.
    assert manager.keyset == store.keyset
    assert manager.current == store.keyset.current
    assert len(store.keyset.in_state(KeyState.CURRENT)) == 1


def test_two_replicas_rotate_once(clock: FakeClock) -> None:
    store = seeded(clock)
    a = KeyManager(store, POLICY, clock=clock, run_rotation=True)
    b = KeyManager(store, POLICY, clock=clock, run_rotation=True)
    a.refresh()
    b.refresh()
    kids_before = {k.kid for k in store.keyset}
    clock.advance(POLICY.rotate_every)
    a.refresh()
    b.refresh()
    assert a.current == b.current
    # One promotion, one new next key: no key lost, none duplicated.
    assert kids_before < {k.kid for k in store.keyset}
    assert len(store.keyset) == len(kids_before) + 1


def test_failed_reload_keeps_last_keys_and_logs_one_clean_line(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = seeded(clock)
    metrics = PrometheusObserver()
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=True, observer=metrics)
    manager.refresh()
    current = manager.current
    assert current is not None and current.private_jwk is not None
    store.fail = True
    caplog.set_level(logging.DEBUG, logger="s2s")
    caplog.clear()
    assert manager.refresh() is False
    assert manager.current == current and manager.ready
    records = [r for r in caplog.records if r.name.startswith("s2s")]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "memory store is down" in records[0].getMessage()
    assert str(current.private_jwk["d"]) not in caplog.text
    failures = {"reason": "unreachable"}
    assert metrics.registry.get_sample_value("s2s_issuer_keyset_reload_failures_total", failures) == 1


def test_unexpected_error_is_logged_by_type_only(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    class Leaky(MemoryKeyStore):
        def load(self) -> tuple[KeySet, str | None]:
            raise RuntimeError("password=hunter2")

    manager = KeyManager(Leaky(), POLICY, clock=clock)
    assert manager.refresh() is False
    assert not manager.ready
    assert "RuntimeError" in caplog.text and "hunter2" not in caplog.text


def test_empty_store_without_rotation_or_creation_is_not_ready(clock: FakeClock) -> None:
    store = MemoryKeyStore()
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=False, create_keys=False)
    assert manager.refresh()
    assert not manager.ready and store.saves == 0
    creating = KeyManager(store, POLICY, clock=clock, run_rotation=False, create_keys=True)
    assert creating.refresh() and creating.ready and store.saves == 1


def test_revoked_key_leaves_the_served_jwks_at_the_next_reload(
    client: TestClient[Litestar], runtime: IssuerRuntime, store: MemoryKeyStore, clock: FakeClock
) -> None:
    clock.advance(POLICY.publish_lead)
    update_keyset(store, lambda ks: rotate(ks, clock.now(), POLICY))
    previous = store.keyset.in_state(KeyState.PREVIOUS)[0]
    runtime.keys.refresh()
    assert previous.kid in {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    # Retire it by time, then revoke the current one.
    clock.advance(POLICY.previous_keep)
    runtime.keys.refresh()
    current = store.keyset.current
    assert current is not None
    update_keyset(store, lambda ks: revoke(ks, current.kid, clock.now(), POLICY))
    runtime.keys.refresh()
    response = client.get("/.well-known/jwks.json")
    assert response.headers["cache-control"] == f"public, max-age={int(POLICY.jwks_max_age)}"
    served = response.json()["keys"]
    kids = {k["kid"] for k in served}
    assert kids == {k.kid for k in store.keyset.published}
    assert previous.kid not in kids and current.kid not in kids
    assert store.keyset.get(previous.kid).state is KeyState.RETIRED
    for key in served:
        assert set(key) <= {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}
    for key in store.keyset:
        assert key.private_jwk is not None
        assert str(key.private_jwk["d"]) not in response.text


def test_app_reload_loop_serves_a_rotation_without_restart(registry: object, clock: FakeClock) -> None:
    import time

    from s2s.issuer import IssuerSettings
    from s2s.litestar.issuer import create_issuer_app
    from tests.issuer.helpers import ISSUER

    policy = RotationPolicy(poll_interval=0.05, jwks_max_age=1, refetch_cooldown=1, publish_lead=3)
    settings = IssuerSettings(issuer=ISSUER, rotation=policy, run_rotation=False)
    store = seeded(clock)
    app = create_issuer_app(settings, store=store, registry=registry, clock=clock)  # type: ignore[arg-type]
    with TestClient(app, base_url=ISSUER) as tc:
        before = tc.get("/ready").json()["kid"]
        clock.advance(policy.publish_lead)
        update_keyset(store, lambda ks: rotate(ks, clock.now(), policy))
        deadline = time.monotonic() + 10
        while tc.get("/ready").json()["kid"] == before:
            assert time.monotonic() < deadline, "the reload loop never picked up the rotation"
            time.sleep(0.02)
        assert tc.get("/ready").json()["kid"] == store.keyset.current.kid  # type: ignore[union-attr]
