"""Client-secret rotation without a gap: the model, its expiry, the constant-time check, pruning,
the legacy-hash upgrade of an old secret, and the token endpoint during and after the grace."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient

from s2s.cli import main
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import (
    Client,
    FileClientRegistry,
    IssuerSettings,
    SecretsManagerClientRegistry,
    SecretVerifier,
    hash_secret,
    new_client,
)
from s2s.issuer import _secret_hash as secret_hash_module
from s2s.issuer._clients import MAX_PREVIOUS_SECRETS, MAX_SECRET_GRACE, prune_expired_secrets
from s2s.issuer._registry import dump_registry, parse_registry
from s2s.issuer._secret_hash import StoredSecret, generate_secret
from s2s.keys._rotation import RotationPolicy
from s2s.litestar.issuer import create_issuer_app
from tests.issuer.helpers import AUDIENCE, ISSUER, LEGACY_HASH, SECRET, SECRET_HASH, assert_refused, basic
from tests.issuer.helpers import refusal_reason as last_refusal
from tests.support import MemoryKeyStore

HOUR = 3600.0
_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
    "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
}
CC = {"grant_type": "client_credentials"}


def secret_client(secret_hash: str = SECRET_HASH, **options: Any) -> Client:
    return Client(client_id="svc", audiences=(AUDIENCE,), secret_hash=secret_hash, **options)


def rotated(clock: FakeClock, grace: float = HOUR) -> tuple[Client, str]:
    new = generate_secret()
    return secret_client().with_new_secret(hash_secret(new), now=clock.now(), grace=grace), new


# -- the model -----------------------------------------------------------------------------------
def test_a_rotated_client_round_trips_through_the_registry_document(clock: FakeClock) -> None:
    client, _ = rotated(clock)
    assert [s.not_after for s in client.secrets] == [None, clock.now() + HOUR]
    assert client.secrets[1].secret_hash == SECRET_HASH and client.secret_hash != SECRET_HASH
    doc = client.to_document()
    assert doc["previous_secrets"] == [{"secret_hash": SECRET_HASH, "not_after": clock.now() + HOUR}]
    assert "secret_count" not in doc and "previous_secrets_not_after" not in doc
    again = Client.from_document(json.loads(json.dumps(doc)))
    assert again == client and again.secrets == client.secrets
    assert parse_registry(dump_registry({"svc": client}), "test")["svc"] == client
    public = client.to_public_dict()
    assert public["secret_count"] == 2 and public["previous_secrets_not_after"] == [clock.now() + HOUR]
    assert SECRET_HASH not in json.dumps(public) and SECRET_HASH not in repr(client)


def test_a_registry_of_an_earlier_version_still_loads_and_is_written_unchanged() -> None:
    # One secret_hash and no previous_secrets: the document earlier versions wrote.
    old = {"client_id": "svc", "audiences": [AUDIENCE], "secret_hash": LEGACY_HASH}
    raw = json.dumps({"format": "s2s.clients/1", "clients": [old]})
    client = parse_registry(raw, "test")["svc"]
    assert [(s.secret_hash, s.not_after) for s in client.secrets] == [(LEGACY_HASH, None)]
    assert "previous_secrets" not in client.to_document()
    assert client.to_public_dict()["secret_count"] == 1


@pytest.mark.parametrize(
    "previous",
    [
        "sha256$x",
        {"secret_hash": SECRET_HASH, "not_after": 1},
        [{"secret_hash": SECRET_HASH}],
        [{"secret_hash": SECRET_HASH, "not_after": "soon"}],
        [{"secret_hash": SECRET_HASH, "not_after": True}],
        [{"secret_hash": "sha256$short", "not_after": 1}],
        [{"secret_hash": 5, "not_after": 1}],
        ["sha256$x"],
        [{"secret_hash": SECRET_HASH, "not_after": 1}] * (MAX_PREVIOUS_SECRETS + 1),
    ],
)
def test_malformed_previous_secrets_are_refused(previous: Any) -> None:
    doc = {
        "client_id": "svc",
        "audiences": [AUDIENCE],
        "secret_hash": SECRET_HASH,
        "previous_secrets": previous,
    }
    with pytest.raises(ConfigError):
        Client.from_document(doc)


def test_previous_secrets_need_a_current_secret_and_a_secret_client(clock: FakeClock) -> None:
    old = StoredSecret(SECRET_HASH, clock.now() + HOUR)
    with pytest.raises(ConfigError, match="without a current secret"):
        Client(client_id="svc", audiences=(AUDIENCE,), jwks=(_JWK,), previous_secrets=(old,))
    with pytest.raises(ConfigError, match="needs a not_after"):
        secret_client(previous_secrets=(StoredSecret(SECRET_HASH),))
    pkj, secret = new_client("pkj", audiences=[AUDIENCE], jwks=_JWK, now=clock.now())
    assert secret is None
    with pytest.raises(ConfigError, match="private_key_jwt"):
        pkj.with_new_secret(SECRET_HASH, now=clock.now())


@pytest.mark.parametrize("grace", [-1.0, MAX_SECRET_GRACE + 1, float("nan"), True])
def test_the_grace_is_bounded(clock: FakeClock, grace: float) -> None:
    with pytest.raises(ConfigError, match="grace"):
        secret_client().with_new_secret(SECRET_HASH, now=clock.now(), grace=grace)


def test_rotations_within_the_grace_keep_each_old_secret_until_its_own_end(clock: FakeClock) -> None:
    client = secret_client()
    ends = []
    for _ in range(MAX_PREVIOUS_SECRETS):
        client = client.with_new_secret(hash_secret(generate_secret()), now=clock.now(), grace=HOUR)
        ends.append(clock.now() + HOUR)
        clock.advance(60)
    assert sorted(s.not_after for s in client.previous_secrets) == ends  # type: ignore[type-var]
    with pytest.raises(ConfigError, match="--grace 0"):
        client.with_new_secret(hash_secret(generate_secret()), now=clock.now(), grace=HOUR)
    # Once the first grace ended, there is room again (the expired one is dropped).
    clock.set(ends[0])
    again = client.with_new_secret(hash_secret(generate_secret()), now=clock.now(), grace=HOUR)
    assert len(again.previous_secrets) == MAX_PREVIOUS_SECRETS
    # --grace 0: the new secret alone, every old one ended now.
    assert client.with_new_secret(SECRET_HASH, now=clock.now(), grace=0).secrets == (
        StoredSecret(SECRET_HASH),
    )


# -- the check -----------------------------------------------------------------------------------
def test_old_and_new_secrets_work_during_the_grace_and_only_the_new_after(clock: FakeClock) -> None:
    client, new = rotated(clock)
    verifier = SecretVerifier(clock)
    assert verifier.assess(client, SECRET).ok is True
    assert verifier.assess(client, new).ok is True
    assert verifier.assess(client, "wrong").reason == "wrong secret"
    clock.advance(HOUR - 1)
    assert verifier.assess(client, SECRET).ok is True
    clock.advance(1)  # not_after itself is refused
    check = verifier.assess(client, SECRET)
    assert check.ok is False and "expired" in check.reason
    assert verifier.assess(client, new).ok is True
    assert verifier.verify_slow(client, SECRET) is False  # the full check agrees


def test_grace_zero_refuses_the_old_secret_at_once(clock: FakeClock) -> None:
    client, new = rotated(clock, grace=0)
    verifier = SecretVerifier(clock)
    assert verifier.assess(client, SECRET) == secret_hash_module.SecretCheck(False, "wrong secret")
    assert verifier.assess(client, new).ok is True


@pytest.mark.parametrize("which", ["current", "middle", "oldest", "expired", "none"])
def test_every_stored_hash_is_compared_whatever_matches(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """No early exit: the time taken does not tell which secret matched, or whether any did."""
    secrets = [generate_secret() for _ in range(4)]
    client = secret_client(hash_secret(secrets[0]))
    # secrets[0] is kept 60 s, secrets[1] and [2] an hour; [3] is current.
    client = client.with_new_secret(hash_secret(secrets[1]), now=clock.now(), grace=60)
    client = client.with_new_secret(hash_secret(secrets[2]), now=clock.now(), grace=HOUR)
    client = client.with_new_secret(hash_secret(secrets[3]), now=clock.now(), grace=HOUR)
    clock.advance(120)
    presented = {"current": secrets[3], "middle": secrets[2], "oldest": secrets[1], "expired": secrets[0]}
    calls: list[tuple[bytes, bytes]] = []
    real = secret_hash_module.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secret_hash_module.hmac, "compare_digest", counting)
    check = SecretVerifier(clock).assess(client, presented.get(which, "wrong"))
    assert len(calls) == len(client.secrets) == 4
    assert [b for _, b in calls] == [s.digest for s in client.secrets]
    assert check.ok is (which in ("current", "middle", "oldest"))
    assert ("expired" in check.reason) is (which == "expired")


def test_an_unknown_client_and_a_secretless_one_cost_one_compare(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    real = secret_hash_module.hmac.compare_digest
    monkeypatch.setattr(secret_hash_module.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    pkj = Client(client_id="pkj", audiences=(AUDIENCE,), jwks=(_JWK,))
    assert SecretVerifier(clock).assess(pkj, SECRET).ok is False
    assert calls == [1]


def test_a_legacy_old_secret_takes_the_slow_path_then_the_cache_and_expires(clock: FakeClock) -> None:
    legacy = secret_client(LEGACY_HASH)
    new = generate_secret()
    client = legacy.with_new_secret(hash_secret(new), now=clock.now(), grace=HOUR)
    verifier = SecretVerifier(clock)
    assert verifier.assess(client, new).ok is True  # the fast one decides without scrypt
    assert verifier.assess(client, SECRET).ok is None  # the old one needs scrypt once
    assert verifier.verify_slow(client, SECRET)
    assert verifier.assess(client, SECRET).ok is True and verifier.legacy_match(client, SECRET) == LEGACY_HASH
    clock.advance(HOUR)
    # Expired: refused at once, cache or not, and no scrypt is run for it any more.
    assert verifier.assess(client, SECRET).ok is False
    assert verifier.legacy_match(client, SECRET) is None and not verifier.verify_slow(client, SECRET)


# -- pruning at the next write -------------------------------------------------------------------
def test_the_next_write_prunes_expired_secrets_from_a_file_registry(tmp_path: Path, clock: FakeClock) -> None:
    registry = FileClientRegistry(tmp_path / "clients.json", clock=clock)
    client, _ = rotated(clock)
    registry.add(client)
    assert len(registry.all()[0].secrets) == 2
    clock.advance(HOUR)
    assert len(registry.all()[0].secrets) == 2  # reading changes nothing
    registry.add(Client(client_id="other", audiences=(AUDIENCE,), secret_hash=SECRET_HASH))
    pruned = {c.client_id: c for c in registry.all()}["svc"]
    assert pruned.secrets == (StoredSecret(client.secret_hash),)  # type: ignore[arg-type]
    assert SECRET_HASH not in json.dumps(json.loads((tmp_path / "clients.json").read_text())["clients"][1])


def test_the_next_write_prunes_expired_secrets_in_secrets_manager(sm: Any, clock: FakeClock) -> None:
    registry = SecretsManagerClientRegistry("s2s/rotation", sm, clock=clock, background=False)
    client, _ = rotated(clock)
    registry.add(client)
    doc = json.loads(sm.get_secret_value(SecretId="s2s/rotation", VersionStage="AWSCURRENT")["SecretString"])
    assert doc["clients"][0]["previous_secrets"][0]["not_after"] == clock.now() + HOUR
    clock.advance(HOUR)
    registry.remove("svc")
    registry.add(client)  # the same record, written again after its grace: pruned on the way in
    doc = json.loads(sm.get_secret_value(SecretId="s2s/rotation", VersionStage="AWSCURRENT")["SecretString"])
    assert "previous_secrets" not in doc["clients"][0]


def test_prune_keeps_secrets_still_in_their_grace(clock: FakeClock) -> None:
    client, _ = rotated(clock)
    clients = {"svc": client}
    prune_expired_secrets(clients, clock.now() + HOUR - 1)
    assert clients["svc"] is client
    prune_expired_secrets(clients, clock.now() + HOUR)
    assert len(clients["svc"].secrets) == 1


# -- the token endpoint, in process, with the CLI changing the registry it reads -----------------
@pytest.fixture
def file_issuer(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[TestClient[Litestar], Path]]:
    path = tmp_path / "keys" / "clients.json"
    settings = IssuerSettings(
        issuer=ISSUER,
        clients=f"file://{path}",
        rotation=RotationPolicy(),
        run_rotation=True,
        rate_limit=1000,
        rate_burst=1000,
    )
    registry = FileClientRegistry(path, clock=clock, reload_interval=0.0)
    app = create_issuer_app(
        settings, store=MemoryKeyStore(), registry=registry, clock=clock, reload_loop=False
    )
    with TestClient(app, base_url=ISSUER) as tc:
        yield tc, path


def cli(path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--registry", f"file://{path}"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_rotation_through_the_cli_and_the_token_endpoint(
    file_issuer: tuple[TestClient[Litestar], Path], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Old and new secret both get tokens during the grace; after it the old one is refused with
    ``invalid_client``, its reason in the log only, and nothing secret leaks anywhere."""
    caplog.set_level(logging.DEBUG)
    http, path = file_issuer
    # The CLI reads the system clock: the issuer's fake clock starts at the real time (fixture).
    old = json.loads(cli(path, "clients", "add", "svc", "--audience", AUDIENCE, "--json"))["client_secret"]
    out = json.loads(cli(path, "clients", "rotate-secret", "svc", "--grace", "10m", "--json"))
    new = out["client_secret"]
    assert new != old and out["secret_count"] == 2
    assert abs(out["previous_secrets_not_after"][0] - (time.time() + 600)) < 60
    stored = path.read_text()
    assert old not in stored and new not in stored

    def token(secret: str) -> Any:
        return http.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", secret)})

    assert token(old).status_code == 200 and token(new).status_code == 200
    not_after = out["previous_secrets_not_after"][0]
    clock.set(not_after - 1)
    assert token(old).status_code == 200
    clock.set(not_after)
    refused = token(old)
    assert_refused(refused, 401, "invalid_client", caplog, old, new)
    assert "secret expired" in last_refusal(caplog)
    assert token(new).status_code == 200
    # Expired secrets count against the failure budget like any wrong one.
    endpoint = http.app.state.s2s_issuer.endpoint
    charged: list[str] = []
    real = endpoint.limiter.record_failure
    endpoint.limiter.record_failure = lambda key: charged.append(key) or real(key)
    token(old)
    assert len(charged) == 1
    # The next change of the registry (here on the issuer's clock) prunes it; the new secret stays.
    FileClientRegistry(path, clock=clock).add(
        Client(client_id="other", audiences=(AUDIENCE,), secret_hash=SECRET_HASH)
    )
    assert "previous_secrets" not in path.read_text()
    assert token(new).status_code == 200


def test_a_legacy_old_secret_is_upgraded_in_place_and_keeps_its_grace(
    file_issuer: tuple[TestClient[Litestar], Path], clock: FakeClock
) -> None:
    http, path = file_issuer
    registry = FileClientRegistry(path, clock=clock)
    new = generate_secret()
    registry.add(secret_client(LEGACY_HASH).with_new_secret(hash_secret(new), now=clock.now(), grace=HOUR))
    response = http.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", SECRET)})
    assert response.status_code == 200
    upgraded = registry.all()[0]
    assert upgraded.secret_hash == hash_secret(new)
    assert [s.not_after for s in upgraded.previous_secrets] == [clock.now() + HOUR]
    assert upgraded.previous_secrets[0].secret_hash.startswith("sha256$")
    assert "scrypt" not in path.read_text()
    clock.advance(HOUR)
    assert (
        http.post("/oauth2/token", data=CC, headers={"Authorization": basic("svc", SECRET)}).status_code
        == 401
    )


def test_rotate_secret_through_the_cli_in_secrets_manager_loses_no_concurrent_change(
    sm: Any, clock: FakeClock
) -> None:
    """The rotation is a registry change like add/remove: a compare-and-swap write that is retried
    on a concurrent change, so neither the rotation nor the other change is lost."""
    url = "aws-sm://s2s/rotation-cli"
    runner = CliRunner()
    added = runner.invoke(
        main, ["clients", "add", "svc", "--audience", AUDIENCE, "--json", "--registry", url]
    )
    old = json.loads(added.stdout)["client_secret"]
    other = SecretsManagerClientRegistry("s2s/rotation-cli", sm, background=False)
    real_update = SecretsManagerClientRegistry.update
    raced: list[bool] = []

    def update_with_a_race(self: SecretsManagerClientRegistry, change: Any) -> None:
        def racing_change(clients: dict[str, Client]) -> None:
            if not raced:  # another operator adds a client between our read and our write
                raced.append(True)
                other.add(Client(client_id="other", audiences=(AUDIENCE,), secret_hash=SECRET_HASH))
            change(clients)

        real_update(self, racing_change)

    SecretsManagerClientRegistry.update = update_with_a_race  # type: ignore[method-assign]
    try:
        rotated = runner.invoke(main, ["clients", "rotate-secret", "svc", "--json", "--registry", url])
    finally:
        SecretsManagerClientRegistry.update = real_update  # type: ignore[method-assign]
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)["client_secret"]
    clients = {c.client_id: c for c in other.all()}
    assert set(clients) == {"svc", "other"} and raced
    verifier = SecretVerifier(FakeClock(time.time()))
    assert verifier.verify(clients["svc"], old) and verifier.verify(clients["svc"], new)
    raw = sm.get_secret_value(SecretId="s2s/rotation-cli", VersionStage="AWSCURRENT")["SecretString"]
    assert old not in raw and new not in raw and len(json.loads(raw)["clients"][1]["previous_secrets"]) == 1
