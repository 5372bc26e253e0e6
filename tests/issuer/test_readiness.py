"""/ready means "this replica can issue a token now": signable keys, the state store answering,
the registry loaded; signer configuration errors are 503, never 500; a rotation that cannot be
saved is reported as that (issue 9 item 10, issue 10 item 3)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import InMemoryClientRegistry, IssuerSettings, KeyManager, create_first_keys
from s2s.issuer._readiness import ReadinessMonitor
from s2s.issuer.errors import StateUnavailable
from s2s.keys import FileKeyStore, KeySet, RotationPolicy, SigningKey, ensure_keys, update_keyset
from s2s.keys.errors import KeyStoreError
from s2s.litestar.issuer import create_issuer_app
from tests.issuer.helpers import AUDIENCE, FORM, ISSUER, SECRET, basic
from tests.support import MemoryKeyStore

POLICY = RotationPolicy()


def _strip_private(key: SigningKey) -> SigningKey:
    return replace(key, private_jwk=None)


def seeded(clock: FakeClock) -> MemoryKeyStore:
    store = MemoryKeyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), POLICY))
    return store


def without_signer_key(keyset: KeySet) -> KeySet:
    current = keyset.current
    assert current is not None
    return keyset.replace_key(_strip_private(current))


def token_request(tc: TestClient[Any]) -> Any:
    return tc.post(
        "/oauth2/token",
        content=f"grant_type=client_credentials&audience={AUDIENCE}",
        headers={"Content-Type": FORM, "Authorization": basic("svc", SECRET)},
    )


# -- a keyset that cannot sign ------------------------------------------------------------------
def test_unsignable_keyset_is_refused_and_the_last_good_keys_stay(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = seeded(clock)
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=False, create_keys=False)
    assert manager.refresh()
    good = manager.current
    assert good is not None
    store.keyset = without_signer_key(store.keyset)
    assert manager.refresh() is False
    assert manager.current == good and manager.current.private_jwk is not None
    assert "neither a private key nor a KMS key id" in caplog.text
    assert any(r.levelno == logging.ERROR for r in caplog.records if r.name.startswith("s2s"))


def test_unsignable_keyset_on_first_load_is_not_ready_and_refuses_to_start(clock: FakeClock) -> None:
    store = seeded(clock)
    store.keyset = without_signer_key(store.keyset)
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=False, create_keys=False)
    assert manager.refresh() is False
    readiness = manager.readiness()
    assert not readiness and "neither a private key nor a KMS key id" in readiness.reason
    settings = IssuerSettings(issuer=ISSUER, rotation=POLICY, run_rotation=False, create_keys=False)
    app = create_issuer_app(settings, store=store, registry=InMemoryClientRegistry(), clock=clock)
    with pytest.raises(BaseException) as info, TestClient(app, base_url=ISSUER):
        pass
    errors = [info.value]
    while isinstance(errors[-1], BaseExceptionGroup):
        errors.append(errors[-1].exceptions[0])
    assert isinstance(errors[-1], ConfigError) and "neither a private key" in errors[-1].description


def test_serve_refuses_an_unsignable_keyset_with_one_line(tmp_path: Any, clock: FakeClock) -> None:
    path = tmp_path / "keys"
    store = FileKeyStore(path)
    update_keyset(store, lambda ks: without_signer_key(ensure_keys(ks, clock.now(), POLICY)))
    settings = IssuerSettings(issuer=ISSUER, keystore=str(path), rotation=POLICY, create_keys=False)
    with pytest.raises(ConfigError) as info:
        create_first_keys(settings, clock=clock)
    assert "\n" not in info.value.description and "cannot sign" in info.value.description


class _ConfigBrokenSigner:
    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        raise ConfigError(f"key {key.kid} has no local private key")


def test_a_signer_configuration_error_is_503_not_500(
    settings: IssuerSettings, registry: InMemoryClientRegistry, clock: FakeClock
) -> None:
    app = create_issuer_app(
        settings,
        store=MemoryKeyStore(),
        registry=registry,
        clock=clock,
        signer=_ConfigBrokenSigner(),
        reload_loop=False,
    )
    with TestClient(app, base_url=ISSUER) as tc:
        response = token_request(tc)
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["retry-after"] and response.headers["cache-control"] == "no-store"


# -- dependencies ------------------------------------------------------------------------------
class _FlakyState:
    """A state store whose probe fails on demand (as DynamoDB's does when it is down)."""

    url = "fake://state"

    def __init__(self) -> None:
        self.down = False

    def probe(self) -> None:
        if self.down:
            raise StateUnavailable("DynamoDB table 'state': AwsUnreachable")

    def seen_or_add(self, key: str, expires_at: float) -> bool:
        return False

    def acquire(self, key: str) -> float:
        if self.down:
            raise StateUnavailable()
        return 0.0

    failure_wait = record_failure = acquire


def test_ready_follows_the_state_store_down_and_back(
    settings: IssuerSettings, registry: InMemoryClientRegistry, clock: FakeClock
) -> None:
    state = _FlakyState()
    app = create_issuer_app(
        settings, store=MemoryKeyStore(), registry=registry, clock=clock, state=state, reload_loop=False
    )
    with TestClient(app, base_url=ISSUER) as tc:
        monitor: ReadinessMonitor = app.state.s2s_issuer.readiness
        assert tc.get("/ready").status_code == 200
        state.down = True
        monitor.check_all()  # what the background loop does every second
        answer = tc.get("/ready")
        assert answer.status_code == 503
        assert answer.json() == {
            "status": "not ready",
            "reason": "state store: DynamoDB table 'state': AwsUnreachable",
        }
        assert token_request(tc).status_code == 503
        state.down = False
        monitor.check_all()
        assert tc.get("/ready").status_code == 200


def test_a_hung_probe_counts_as_failed_after_the_timeout(clock: FakeClock) -> None:
    release = threading.Event()
    manager = KeyManager(seeded(clock), POLICY, clock=clock, run_rotation=False)
    manager.refresh()
    monitor = ReadinessMonitor(manager, {"state store": lambda: None}, clock=clock, timeout=2.0)
    monitor.check_all()
    assert monitor.readiness()
    monitor._probes["state store"] = lambda: bool(release.wait(30))
    worker = threading.Thread(target=monitor.check, args=("state store",))
    worker.start()
    try:
        clock.advance(1.0)
        assert monitor.readiness()  # still within the timeout
        clock.advance(1.5)
        readiness = monitor.readiness()
        assert not readiness and readiness.reason == "state store not answering"
    finally:
        release.set()
        worker.join(30)
    assert monitor.readiness()


def test_a_registry_that_cannot_be_loaded_is_not_ready(
    tmp_path: Any, settings: IssuerSettings, clock: FakeClock
) -> None:
    from s2s.issuer import FileClientRegistry

    path = tmp_path / "clients.json"
    path.write_text("{not json")
    path.chmod(0o600)  # broken, not merely readable by others
    app = create_issuer_app(
        settings, store=MemoryKeyStore(), registry=FileClientRegistry(path), clock=clock, reload_loop=False
    )
    with TestClient(app, base_url=ISSUER) as tc:
        answer = tc.get("/ready")
        assert answer.status_code == 503 and answer.json()["reason"].startswith("client registry:")
        path.write_text('{"format": "s2s.clients/1", "clients": []}')
        app.state.s2s_issuer.readiness.check_all()
        assert tc.get("/ready").status_code == 200


# -- a read-only store during a scheduled rotation ---------------------------------------------
class ReadOnlyStore(MemoryKeyStore):
    read_only = False

    def save(self, keyset: KeySet, expected_version: str | None) -> str:
        if self.read_only:
            raise KeyStoreError(f"{self.url} is read-only")
        return super().save(keyset, expected_version)


def test_a_rotation_that_cannot_be_saved_is_reported_as_that(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = ReadOnlyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), POLICY))
    manager = KeyManager(store, POLICY, clock=clock, run_rotation=True)
    assert manager.refresh()
    first = manager.current
    store.read_only = True
    for _ in range(5):  # well past the rotation and every grace period
        clock.advance(POLICY.rotate_every + POLICY.previous_keep)
        assert manager.refresh()
    readiness = manager.readiness()
    assert readiness, readiness.reason  # the store answers: its keyset is what every JWKS shows
    assert manager.current == first
    assert manager.warnings() == (f"scheduled rotation could not be saved: {store.url} is read-only",)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("s2s")]
    assert len(errors) == 1 and "could not be saved" in errors[0].getMessage()
    assert "unreachable" not in caplog.text
    store.read_only = False
    assert manager.refresh() and manager.warnings() == ()
    assert manager.current is not None and manager.current.kid != first.kid  # type: ignore[union-attr]


def test_the_dynamodb_probe_reads_the_table(mock_aws: None) -> None:
    import boto3

    from s2s.issuer import DynamoDBState, create_state_table

    client = boto3.client("dynamodb", region_name="us-east-1")
    state = DynamoDBState("probed", rate=10, burst=10, client=client)
    with pytest.raises(StateUnavailable, match="ResourceNotFoundException"):
        state.probe()  # no table (a region restored empty, a wrong name): not ready
    create_state_table("probed", client)
    state.probe()
