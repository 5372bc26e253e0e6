"""S2S_STATE_FAILURE_MODE (issue 10 item 3): ``closed`` refuses while the shared state is down
(503 + Retry-After, not ready); ``local`` keeps issuing from this replica's memory (ready, saying
degraded, one WARNING per outage) and goes back to the shared state when it answers."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from litestar.testing import TestClient

from s2s.aws import AwsSettings, CircuitBreaker, aws_client
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import InMemoryClientRegistry, IssuerSettings
from s2s.issuer._fallback_state import LocalFallbackState
from s2s.issuer._readiness import ReadinessMonitor
from s2s.issuer._state import InMemoryState, SQLiteState
from s2s.issuer.errors import StateUnavailable
from s2s.keys._rotation import RotationPolicy, ensure_keys
from s2s.keys._store import update_keyset
from s2s.litestar.issuer import create_issuer_app
from tests.issuer.helpers import AUDIENCE, FORM, ISSUER, SECRET, basic
from tests.support import MemoryKeyStore

WARNING_START = "checking rate limits, failure budgets and assertion replay in this replica's memory"
WARNING_END = "answers again"


class FlakyState:
    """A shared state store that is down on demand, counting the calls that reached it."""

    url = "fake://shared"

    def __init__(self, *, with_probe: bool = True) -> None:
        self.down = False
        self.calls = 0
        self.seen: dict[str, float] = {}
        if with_probe:
            self.probe = self._probe

    def _probe(self) -> None:
        if self.down:
            raise StateUnavailable("DynamoDB table 'state': AwsUnreachable")

    def _reach(self) -> None:
        self.calls += 1
        if self.down:
            raise StateUnavailable()

    def seen_or_add(self, key: str, expires_at: float) -> bool:
        self._reach()
        if key in self.seen:
            return True
        self.seen[key] = expires_at
        return False

    def acquire(self, key: str) -> float:
        self._reach()
        return 0.0

    failure_wait = record_failure = acquire


def seeded_store(clock: FakeClock) -> MemoryKeyStore:
    store = MemoryKeyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), RotationPolicy()))
    return store


def token(tc: TestClient[Any]) -> Any:
    return tc.post(
        "/oauth2/token",
        content=f"grant_type=client_credentials&audience={AUDIENCE}",
        headers={"Content-Type": FORM, "Authorization": basic("svc", SECRET)},
    )


def app_with(
    settings: IssuerSettings, registry: InMemoryClientRegistry, clock: FakeClock, state: Any, mode: str
) -> Any:
    return create_issuer_app(
        replace(settings, run_rotation=False, state_failure_mode=mode),
        store=seeded_store(clock),
        registry=registry,
        clock=clock,
        state=state,
        reload_loop=False,
    )


def outage_warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


# -- the setting -------------------------------------------------------------------------------------


def test_the_setting_is_read_through_the_env_reader() -> None:
    assert IssuerSettings.from_env(environ={}).state_failure_mode == "closed"
    local = IssuerSettings.from_env(environ={"S2S_STATE_FAILURE_MODE": "local"})
    assert local.state_failure_mode == "local"
    with pytest.raises(ConfigError, match=r"S2S_STATE_FAILURE_MODE='open' must be one of closed, local"):
        IssuerSettings.from_env(environ={"S2S_STATE_FAILURE_MODE": "open"})
    with pytest.raises(ConfigError, match="state_failure_mode"):
        IssuerSettings(state_failure_mode="open")


# -- closed (the default) ----------------------------------------------------------------------------


def test_closed_refuses_tokens_and_is_not_ready_while_the_state_is_down(
    settings: IssuerSettings, registry: InMemoryClientRegistry, clock: FakeClock
) -> None:
    state = FlakyState()
    app = app_with(settings, registry, clock, state, "closed")
    with TestClient(app, base_url=ISSUER) as tc:
        monitor: ReadinessMonitor = app.state.s2s_issuer.readiness
        assert token(tc).status_code == 200
        state.down = True
        monitor.check_all()
        response = token(tc)
        assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
        assert response.headers["retry-after"]
        ready = tc.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "state store: DynamoDB table 'state': AwsUnreachable"
        state.down = False
        monitor.check_all()
        assert tc.get("/ready").status_code == 200 and token(tc).status_code == 200


# -- local -------------------------------------------------------------------------------------------


def test_local_keeps_issuing_ready_and_degraded_then_goes_back(
    settings: IssuerSettings,
    registry: InMemoryClientRegistry,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = FlakyState()
    app = app_with(settings, registry, clock, state, "local")
    with TestClient(app, base_url=ISSUER) as tc:
        runtime = app.state.s2s_issuer
        assert isinstance(runtime.state, LocalFallbackState) and runtime.state.shared is state
        assert token(tc).status_code == 200
        reached = state.calls
        assert reached > 0  # the shared store serves while it answers
        assert tc.get("/ready").json() == {"status": "ready", "kid": runtime.keys.current.kid}

        state.down = True
        for _ in range(5):
            assert token(tc).status_code == 200  # served from memory
        runtime.readiness.check_all()
        ready = tc.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["warnings"] == ["state store degraded: DynamoDB table 'state': AwsUnreachable"]
        # The first request found the store down; the others went straight to memory.
        assert state.calls == reached + 1
        assert len(outage_warnings(caplog, WARNING_START)) == 1
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("s2s")]

        state.down = False
        runtime.readiness.check_all()  # the probe answers: back to the shared state
        assert len(outage_warnings(caplog, WARNING_END)) == 1
        assert "warnings" not in tc.get("/ready").json()
        before = state.calls
        assert token(tc).status_code == 200
        assert state.calls > before


def test_local_replay_protection_holds_in_memory_during_an_outage(clock: FakeClock) -> None:
    shared = FlakyState()
    state = LocalFallbackState(shared, InMemoryState(10, 10, clock=clock), clock=clock)
    expires = clock.now() + 60
    assert state.seen_or_add("jti-before", expires) is False
    shared.down = True
    assert state.seen_or_add("jti-during", expires) is False
    assert state.seen_or_add("jti-during", expires) is True  # replayed at this replica: refused
    shared.down = False
    state.probe()
    assert state.degraded is None
    assert state.seen_or_add("jti-before", expires) is True  # the shared store remembers its own
    assert "jti-during" not in shared.seen  # the documented trade-off: memory is not copied back


def test_a_hung_probe_makes_the_replica_degraded_and_requests_skip_the_store(clock: FakeClock) -> None:
    shared = FlakyState()
    release = threading.Event()
    shared.probe = lambda: bool(release.wait(30))
    state = LocalFallbackState(shared, InMemoryState(10, 10, clock=clock), clock=clock, probe_timeout=2.0)
    monitor = ReadinessMonitor(
        _ReadyKeys(), {"state store": state.probe}, clock=clock, degradable=["state store"]
    )
    worker = threading.Thread(target=monitor.check, args=("state store",))
    worker.start()
    try:
        for _ in range(3000):  # until the probe is under way (a generous ceiling: 30 s)
            if state._probe_started is not None:
                break
            release.wait(0.01)
        assert state._probe_started is not None
        clock.advance(1.0)
        assert state.degraded is None and state.acquire("svc") == 0.0 and shared.calls == 1
        clock.advance(1.5)
        assert state.degraded == "not answering"
        calls = shared.calls
        assert state.acquire("svc") == 0.0 and shared.calls == calls  # memory, not the hung store
        assert monitor.readiness() and monitor.warnings() == ("state store degraded: not answering",)
    finally:
        release.set()
        worker.join(30)
    assert state.degraded is None and monitor.warnings() == ()  # the probe answered at last


def test_without_a_probe_one_request_per_interval_tries_the_store_again(clock: FakeClock) -> None:
    shared = FlakyState(with_probe=False)
    state = LocalFallbackState(shared, InMemoryState(10, 10, clock=clock), clock=clock, trial_interval=5.0)
    shared.down = True
    assert state.acquire("svc") == 0.0 and state.degraded
    with pytest.raises(StateUnavailable):
        state.probe()  # still reported to the monitor as the outage it is
    calls = shared.calls
    clock.advance(4.0)
    assert state.acquire("svc") == 0.0 and shared.calls == calls
    clock.advance(1.0)
    assert state.acquire("svc") == 0.0 and shared.calls == calls + 1  # the trial, still down
    shared.down = False
    clock.advance(5.0)
    assert state.acquire("svc") == 0.0 and shared.calls == calls + 2 and state.degraded is None
    assert state.acquire("svc") == 0.0 and shared.calls == calls + 3


class _ReadyKeys:
    """A key manager that is always ready (the readiness of keys is tested elsewhere)."""

    def readiness(self) -> Any:
        from s2s.issuer._keyring import Readiness

        return Readiness(True)

    def warnings(self) -> tuple[str, ...]:
        return ()


# -- SQLite: the default store has a probe too --------------------------------------------------------


def test_the_sqlite_probe_and_local_mode_over_a_broken_file(
    tmp_path: Path,
    settings: IssuerSettings,
    registry: InMemoryClientRegistry,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "state" / "state.sqlite3"
    shared = SQLiteState(path, rate=100, burst=100, clock=clock)
    shared.probe()  # takes the write lock and lets it go
    app = app_with(settings, registry, clock, shared, "local")
    with TestClient(app, base_url=ISSUER) as tc:
        assert token(tc).status_code == 200
        # The file becomes something SQLite cannot open (a restore gone wrong).
        shared.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.mkdir()
        with pytest.raises(StateUnavailable, match="cannot create the state file"):
            shared.probe()
        app.state.s2s_issuer.readiness.check_all()
        ready = tc.get("/ready")
        assert ready.status_code == 200 and ready.json()["warnings"][0].startswith("state store degraded:")
        assert token(tc).status_code == 200
        path.rmdir()
        app.state.s2s_issuer.readiness.check_all()
        assert "warnings" not in tc.get("/ready").json()
    assert len(outage_warnings(caplog, WARNING_START)) == 1
    assert len(outage_warnings(caplog, WARNING_END)) == 1


# -- DynamoDB on moto (in-process) ----------------------------------------------------------------


class DynamoOutage:
    """The DynamoDB client's requests time out (a hung endpoint) while ``down``."""

    def __init__(self, client: Any) -> None:
        self.down = False
        client.meta.events.register_first("before-send.dynamodb", self._send)

    def _send(self, request: Any, **_: Any) -> None:
        if self.down:
            raise ReadTimeoutError(endpoint_url=request.url)


@pytest.mark.parametrize("mode", ["closed", "local"])
def test_dynamodb_state_down_and_back_in_both_modes(
    mock_aws: None, clock: FakeClock, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    from s2s.issuer._dynamodb import DynamoDBState, create_state_table

    client = aws_client("dynamodb", region="us-east-1", settings=AwsSettings(max_attempts=1))
    create_state_table("state", client)
    shared = DynamoDBState(
        "state", rate=100, burst=100, clock=clock, client=client, aws=AwsSettings(breaker_cooldown=3.0)
    )
    shared._db.breaker = CircuitBreaker(threshold=3, cooldown=3.0, clock=clock)
    outage = DynamoOutage(client)
    state: Any = shared
    degradable: list[str] = []
    if mode == "local":
        state = LocalFallbackState(shared, InMemoryState(100, 100, clock=clock), clock=clock)
        degradable = ["state store"]
    monitor = ReadinessMonitor(_ReadyKeys(), {"state store": state.probe}, clock=clock, degradable=degradable)
    expires = clock.now() + 600

    assert state.seen_or_add("jti-1", expires) is False
    assert state.seen_or_add("jti-1", expires) is True
    monitor.check_all()
    assert monitor.readiness() and monitor.warnings() == ()

    outage.down = True
    monitor.check_all()
    if mode == "closed":
        readiness = monitor.readiness()
        assert not readiness and readiness.reason == "state store: DynamoDB table 'state': ReadTimeoutError"
        with pytest.raises(StateUnavailable):
            state.seen_or_add("jti-2", expires)
        with pytest.raises(StateUnavailable):
            state.acquire("svc")
    else:
        assert monitor.readiness()
        assert monitor.warnings() == ("state store degraded: DynamoDB table 'state': ReadTimeoutError",)
        assert state.seen_or_add("jti-2", expires) is False  # per replica during the outage
        assert state.seen_or_add("jti-2", expires) is True
        assert state.acquire("svc") == 0.0
        assert state.record_failure("svc") == 0.0 and state.failure_wait("svc") == 0.0
        assert len(outage_warnings(caplog, WARNING_START)) == 1

    outage.down = False
    clock.advance(3.0)  # the AWS breaker lets its trial through
    monitor.check_all()
    assert monitor.readiness() and monitor.warnings() == ()
    assert state.seen_or_add("jti-3", expires) is False
    assert state.seen_or_add("jti-3", expires) is True
    item = client.get_item(TableName="state", Key={"pk": {"S": "j#" + _digest("jti-3")}})
    assert "Item" in item  # back on the shared table
    if mode == "local":
        assert len(outage_warnings(caplog, WARNING_END)) == 1


def _digest(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()
