"""Replicas that converge: jittered polling, readiness while the store is down, KMS-signing replicas."""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from typing import Any

import boto3
import jwt
import pytest
from botocore.stub import Stubber
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.issuer import InMemoryClientRegistry, IssuerSettings, KeyManager
from s2s.keys import (
    KeyFactories,
    KmsKeyFactory,
    KmsSigner,
    RotationPolicy,
    RoutingSigner,
    SecretsManagerKeyStore,
    ensure_keys,
    rotate,
    update_keyset,
)
from s2s.litestar.issuer import IssuerRuntime, create_issuer_app
from s2s.observe.prometheus import PrometheusObserver
from tests.issuer.helpers import AUDIENCE, FORM, ISSUER, SECRET, assert_refused, basic
from tests.support import MemoryKeyStore

POLL = 30.0


def seeded(clock: FakeClock, policy: RotationPolicy) -> MemoryKeyStore:
    store = MemoryKeyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), policy))
    return store


# -- polling with jitter -----------------------------------------------------------------------------


def test_poll_delays_are_jittered_below_the_poll_interval(clock: FakeClock) -> None:
    policy = RotationPolicy(poll_interval=POLL)
    store = seeded(clock, policy)
    manager = KeyManager(store, policy, clock=clock, rng=random.Random(7))
    assert manager.next_delay(startup_retry=1.0) == 1.0  # nothing loaded yet: retry soon
    manager.refresh()
    delays = [manager.next_delay() for _ in range(2000)]
    assert min(delays) >= 0.8 * POLL and max(delays) <= POLL
    assert max(delays) - min(delays) > 0.15 * POLL  # really spread over the 20 % band
    # Injected generators make the schedule reproducible, and different replicas differ.
    again = KeyManager(store, policy, clock=clock, rng=random.Random(7))
    again.refresh()
    assert [again.next_delay() for _ in range(2000)] == delays
    other = KeyManager(store, policy, clock=clock, rng=random.Random(8))
    other.refresh()
    assert [other.next_delay() for _ in range(20)] != delays[:20]
    with pytest.raises(ValueError, match="jitter"):
        KeyManager(store, policy, jitter=1.0)


def test_run_loop_sleeps_the_jittered_delays_and_reloads(clock: FakeClock) -> None:
    policy = RotationPolicy(poll_interval=POLL)
    store = seeded(clock, policy)
    metrics = PrometheusObserver()
    manager = KeyManager(
        store, policy, clock=clock, rng=random.Random(1), run_rotation=False, observer=metrics
    )
    slept: list[float] = []

    class Stop(Exception):
        pass

    async def fake_sleep(seconds: float) -> None:
        if len(slept) == 6:
            raise Stop
        slept.append(seconds)
        clock.advance(seconds)

    with pytest.raises(Stop):
        asyncio.run(manager.run(sleep=fake_sleep, in_thread=False))
    assert slept[0] == 1.0  # before the first load
    assert all(0.8 * POLL <= s <= POLL for s in slept[1:])
    assert metrics.registry.get_sample_value("s2s_issuer_keyset_reloads_total") == 6 and manager.ready


def test_replicas_converge_on_a_rotation_within_the_poll_interval(clock: FakeClock) -> None:
    """Five replicas with their own jitter; an operator rotates at a random moment, many times."""
    policy = RotationPolicy(poll_interval=POLL, rotate_every=0)
    store = seeded(clock, policy)
    replicas = [
        KeyManager(store, policy, clock=clock, rng=random.Random(i), run_rotation=False) for i in range(5)
    ]
    agenda: list[tuple[float, int]] = []
    for i, manager in enumerate(replicas):
        manager.refresh()
        heapq.heappush(agenda, (clock.now() + manager.next_delay(), i))
    chooser = random.Random(99)
    worst = 0.0
    for _ in range(20):
        # wait long enough for the next key to be publishable, then rotate at an arbitrary moment
        rotate_at = clock.now() + policy.publish_lead + chooser.uniform(0, POLL)
        while agenda[0][0] < rotate_at:
            at, i = heapq.heappop(agenda)
            clock.set(at)
            replicas[i].refresh()
            heapq.heappush(agenda, (at + replicas[i].next_delay(), i))
        clock.set(rotate_at)
        new = update_keyset(store, lambda ks: rotate(ks, clock.now(), policy)).current
        assert new is not None
        behind = set(range(len(replicas)))
        while behind:
            at, i = heapq.heappop(agenda)
            clock.set(at)
            replicas[i].refresh()
            heapq.heappush(agenda, (at + replicas[i].next_delay(), i))
            if replicas[i].current == new:
                behind.discard(i)
                worst = max(worst, at - rotate_at)
    print(f"replicas converged within {worst:.1f}s of a rotation (poll interval {POLL:g}s)")
    assert 0 < worst <= POLL


# -- readiness while the store cannot be reached ----------------------------------------------------


def test_store_down_keeps_signing_until_previous_keep_has_passed(clock: FakeClock) -> None:
    policy = RotationPolicy(poll_interval=POLL, rotate_every=0)
    store = seeded(clock, policy)
    manager = KeyManager(store, policy, clock=clock, run_rotation=False)
    assert manager.refresh()
    loaded, key = clock.now(), manager.current
    store.fail = True
    clock.advance(POLL)
    assert not manager.refresh()
    assert manager.current == key and manager.ready  # keeps the keys it has
    assert manager.usable_until() == loaded + policy.previous_keep
    clock.set(loaded + policy.previous_keep - 1)
    manager.refresh()
    assert manager.ready
    clock.set(loaded + policy.previous_keep)
    manager.refresh()
    readiness = manager.readiness()
    assert not readiness and "past its use" in readiness.reason
    assert manager.current == key  # still able to sign; only readiness changed
    store.fail = False
    assert manager.refresh() and manager.ready  # back as soon as the store answers


def test_store_down_past_the_scheduled_rotation_is_not_ready(clock: FakeClock) -> None:
    policy = RotationPolicy(poll_interval=POLL, rotate_every=6 * 3600)
    store = seeded(clock, policy)
    manager = KeyManager(store, policy, clock=clock, run_rotation=True)
    manager.refresh()
    key = manager.current
    assert key is not None and key.activated_at is not None
    due = key.activated_at + policy.rotate_every
    clock.set(due - 100)
    manager.refresh()  # last successful load before the rotation was due
    store.fail = True
    clock.set(due + POLL - 1)
    manager.refresh()
    assert manager.ready  # other replicas promote at `due`; this one gets one poll interval to follow
    clock.set(due + POLL)
    assert manager.usable_until() == due + POLL and not manager.ready
    assert manager.current == key


def test_a_loaded_keyset_is_authoritative_even_when_its_key_is_overdue(clock: FakeClock) -> None:
    policy = RotationPolicy(poll_interval=POLL, rotate_every=3600)
    store = seeded(clock, policy)
    manager = KeyManager(store, policy, clock=clock, run_rotation=False)  # nobody runs the schedule
    for _ in range(10):
        clock.advance(policy.rotate_every)
        assert manager.refresh() and manager.ready
    assert store.saves == 1


def test_ready_endpoint_and_tokens_while_the_store_is_down(
    registry: InMemoryClientRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    policy = RotationPolicy(poll_interval=POLL, rotate_every=0)
    settings = IssuerSettings(issuer=ISSUER, rotation=policy, run_rotation=False)
    store = seeded(clock, policy)
    app = create_issuer_app(settings, store=store, registry=registry, clock=clock, reload_loop=False)
    runtime: IssuerRuntime = app.state.s2s_issuer
    form = {"grant_type": "client_credentials", "audience": AUDIENCE}
    headers = {"authorization": basic("svc", SECRET), "content-type": FORM}
    with TestClient(app, base_url=ISSUER) as tc:
        kid = tc.get("/ready").json()["kid"]
        store.fail = True
        clock.advance(policy.previous_keep - 1)
        runtime.keys.refresh()
        assert tc.get("/ready").status_code == 200
        assert tc.post("/oauth2/token", data=form, headers=headers).status_code == 200
        clock.advance(1)
        runtime.keys.refresh()
        ready = tc.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        assert ready.headers["cache-control"] == "no-store"
        token = tc.post("/oauth2/token", data=form, headers=headers)
        assert token.status_code == 200  # a load balancer stops sending traffic; requests in flight work
        assert jwt.get_unverified_header(token.json()["access_token"])["kid"] == kid
        assert SECRET not in caplog.text


# -- replicas signing with KMS, sharing a Secrets Manager key store ---------------------------------


@pytest.fixture
def aws(mock_aws: None) -> None:
    """moto for the whole test (the shared ``mock_aws`` fixture of tests/conftest.py)."""


def verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    # The fake clock ran ahead of the wall clock PyJWT reads: iat may be hours in its future.
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["ES256"], audience=AUDIENCE, leeway=86400)
    return claims


def test_kms_replicas_share_a_secrets_manager_store_and_converge(
    aws: None, registry: InMemoryClientRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    policy = RotationPolicy(poll_interval=POLL, rotate_every=0)
    settings = IssuerSettings(
        issuer=ISSUER, rotation=policy, run_rotation=False, create_keys=False, signer="aws-kms"
    )
    name = "s2s/replicas"
    factory = KmsKeyFactory(boto3.client("kms"), deletion_window_days=7)
    update_keyset(SecretsManagerKeyStore(name), lambda ks: ensure_keys(ks, clock.now(), policy, factory))
    apps = [
        create_issuer_app(
            settings, store=SecretsManagerKeyStore(name), registry=registry, clock=clock, reload_loop=False
        )
        for _ in range(2)
    ]
    form = {"grant_type": "client_credentials", "audience": AUDIENCE}
    headers = {"authorization": basic("svc", SECRET), "content-type": FORM}
    with TestClient(apps[0], base_url=ISSUER) as a, TestClient(apps[1], base_url=ISSUER) as b:
        first = a.get("/ready").json()["kid"]
        assert b.get("/ready").json()["kid"] == first
        for issuing in (a, b):
            token = issuing.post("/oauth2/token", data=form, headers=headers).json()["access_token"]
            for serving in (a, b):
                assert verify(token, serving.get("/.well-known/jwks.json").json())["sub"] == "svc"
        # The stored keyset holds KMS key ids and public keys only.
        stored = boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"]
        assert '"kms_key_id"' in stored and '"d"' not in stored and "private_jwk" not in stored

        clock.advance(policy.publish_lead)
        rotated = update_keyset(
            SecretsManagerKeyStore(name), lambda ks: rotate(ks, clock.now(), policy, new_key=factory)
        )
        assert rotated.next is not None and rotated.next.kms_key_id  # the next KMS key, made ahead
        old_token = b.post("/oauth2/token", data=form, headers=headers).json()["access_token"]
        for app in apps:
            app.state.s2s_issuer.keys.refresh()
        new_kid = rotated.current.kid  # type: ignore[union-attr]
        for issuing in (a, b):
            assert issuing.get("/ready").json()["kid"] == new_kid
            token = issuing.post("/oauth2/token", data=form, headers=headers).json()["access_token"]
            assert jwt.get_unverified_header(token)["kid"] == new_kid
            for serving in (a, b):
                jwks = serving.get("/.well-known/jwks.json").json()
                verify(token, jwks)
                verify(old_token, jwks)  # the previous key stays published: no token is lost
    assert SECRET not in caplog.text


def test_kms_signing_failure_answers_503_temporarily_unavailable(
    aws: None, registry: InMemoryClientRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    policy = RotationPolicy(poll_interval=POLL, rotate_every=0)
    kms = boto3.client("kms")
    store = MemoryKeyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), policy, KmsKeyFactory(kms)))
    settings = IssuerSettings(issuer=ISSUER, rotation=policy, run_rotation=False)
    signer = RoutingSigner(kms=KmsSigner(kms))
    app = create_issuer_app(
        settings, store=store, registry=registry, clock=clock, signer=signer, reload_loop=False
    )
    form = {"grant_type": "client_credentials", "audience": AUDIENCE}
    headers = {"authorization": basic("svc", SECRET), "content-type": FORM}
    with TestClient(app, base_url=ISSUER) as tc:
        assert tc.post("/oauth2/token", data=form, headers=headers).status_code == 200
        with Stubber(kms) as stub:
            stub.add_client_error("sign", service_error_code="DisabledException", service_message="key off")
            response = tc.post("/oauth2/token", data=form, headers=headers)
        body = assert_refused(response, 503, "temporarily_unavailable", caplog, SECRET)
        assert body["error_description"] == "signing is temporarily unavailable"
        assert response.headers["retry-after"]
        assert "DisabledException" in caplog.text  # the operator sees why; the caller does not
        assert "DisabledException" not in response.text and "kms" not in response.text.lower()


def test_scheduled_rotation_of_a_kms_keyset_makes_kms_keys_and_cleans_up_a_lost_race(
    aws: None, clock: FakeClock
) -> None:
    policy = RotationPolicy(poll_interval=POLL, rotate_every=3 * 3600)
    kms = boto3.client("kms")
    store = MemoryKeyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), policy, KmsKeyFactory(kms)))
    # No key factory given: both replicas follow the keyset, which signs with KMS.
    a = KeyManager(store, policy, clock=clock, factories=KeyFactories(kms_deletion_window_days=7))
    b = KeyManager(store, policy, clock=clock, factories=KeyFactories(kms_deletion_window_days=7))
    a.refresh()
    b.refresh()
    clock.advance(policy.rotate_every)
    # Both replicas run the schedule from the same keyset; b read it just before a saved.
    stale = MemoryKeyStore()
    stale.keyset, stale.version = store.load()
    assert a.refresh()
    winner = store.keyset
    assert winner.current is not None and winner.current.kid != stale.keyset.current.kid  # type: ignore[union-attr]
    b.store = _RacingStore(stale, store)
    assert b.refresh()  # its save loses the compare-and-swap; it adopts a's keyset
    assert a.keyset == b.keyset == store.keyset == winner
    nxt = winner.next
    assert nxt is not None and nxt.kms_key_id
    states = {
        k["KeyId"]: kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"]
        for k in kms.list_keys()["Keys"]
    }
    held = {k.kms_key_id for k in winner}
    assert all(states[key_id] == "Enabled" for key_id in held)
    orphans = [key_id for key_id in states if key_id not in held]
    assert len(orphans) == 1 and states[orphans[0]] == "PendingDeletion"  # b's unused next key


class _RacingStore:
    """Loads an old keyset once (as a replica that read just before another one wrote)."""

    url = "memory://racing"

    def __init__(self, stale: MemoryKeyStore, real: MemoryKeyStore) -> None:
        self._first: MemoryKeyStore | None = stale
        self._real = real

    def load(self) -> tuple[Any, str | None]:
        if self._first is not None:
            first, self._first = self._first, None
            return first.load()
        return self._real.load()

    def save(self, keyset: Any, expected_version: str | None) -> str:
        return self._real.save(keyset, expected_version)


def test_signer_setting_aws_kms_creates_the_first_keys_in_kms(
    aws: None, registry: InMemoryClientRegistry, clock: FakeClock
) -> None:
    settings = IssuerSettings(issuer=ISSUER, signer="aws-kms", kms_deletion_window_days=7)
    store = MemoryKeyStore()
    app = create_issuer_app(settings, store=store, registry=registry, clock=clock, reload_loop=False)
    form = {"grant_type": "client_credentials", "audience": AUDIENCE}
    headers = {"authorization": basic("svc", SECRET), "content-type": FORM}
    with TestClient(app, base_url=ISSUER) as tc:
        assert len(store.keyset) == 2
        assert all(k.kms_key_id and k.private_jwk is None for k in store.keyset)
        token = tc.post("/oauth2/token", data=form, headers=headers).json()["access_token"]
        verify(token, tc.get("/.well-known/jwks.json").json())


def test_the_schedule_retires_a_kms_key_and_schedules_its_deletion(aws: None, clock: FakeClock) -> None:
    policy = RotationPolicy(poll_interval=POLL, rotate_every=3 * 3600)
    kms = boto3.client("kms")
    store = MemoryKeyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), policy, KmsKeyFactory(kms)))
    first = store.keyset.current
    assert first is not None and first.kms_key_id
    manager = KeyManager(store, policy, clock=clock, factories=KeyFactories(kms_deletion_window_days=7))
    manager.refresh()
    clock.advance(policy.rotate_every)
    manager.refresh()  # first -> previous: still published, its KMS key still enabled
    assert manager.keyset.get(first.kid).state.value == "previous"
    assert kms.describe_key(KeyId=first.kms_key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    clock.advance(policy.previous_keep)
    manager.refresh()  # first retires: out of the JWKS, its KMS key pending deletion
    assert manager.keyset.get(first.kid).state.value == "retired"
    meta = kms.describe_key(KeyId=first.kms_key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    for key in manager.keyset.published:
        assert kms.describe_key(KeyId=key.kms_key_id)["KeyMetadata"]["KeyState"] == "Enabled"
