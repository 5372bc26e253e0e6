from __future__ import annotations

import pytest

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.keys import KeySet, KeyState, RotationPolicy, ensure_keys, prune, revoke, rotate, scheduled_step
from s2s.keys._rotation import format_time
from s2s.keys.errors import KeyNotFound, RotationRefused
from tests.keys.conftest import KeyPool

POLICY = RotationPolicy()


def fresh(clock: FakeClock, key_factory: KeyPool, policy: RotationPolicy = POLICY) -> KeySet:
    return ensure_keys(KeySet(), clock.now(), policy, key_factory)


def states(keyset: KeySet) -> dict[str, KeyState]:
    return {k.kid: k.state for k in keyset}


def test_new_keyset_signs_at_once_and_publishes_a_next_key(clock: FakeClock, key_factory: KeyPool) -> None:
    keyset = fresh(clock, key_factory)
    assert keyset.current is not None and keyset.next is not None
    assert keyset.current.activated_at == clock.now()
    assert len(keyset) == 2
    assert ensure_keys(keyset, clock.now(), POLICY, key_factory) == keyset


def test_rotation_before_publish_lead_is_refused_with_the_safe_time(
    clock: FakeClock, key_factory: KeyPool
) -> None:
    keyset = fresh(clock, key_factory)
    assert keyset.next is not None
    safe = keyset.next.created_at + POLICY.publish_lead
    clock.advance(POLICY.publish_lead - 1)
    with pytest.raises(RotationRefused) as info:
        rotate(keyset, clock.now(), POLICY, new_key=key_factory)
    assert info.value.safe_at == safe
    assert format_time(safe) in info.value.description
    assert "force" in info.value.description
    clock.advance(1)
    rotated = rotate(keyset, clock.now(), POLICY, new_key=key_factory)
    assert rotated.current is not None and rotated.current.kid == keyset.next.kid
    assert rotated.current.activated_at == clock.now()
    old = rotated.get(keyset.current.kid if keyset.current else "")
    assert old.state is KeyState.PREVIOUS and old.deactivated_at == clock.now()
    assert rotated.next is not None and rotated.next.created_at == clock.now()
    assert len(rotated.published) == 3


def test_forced_rotation_promotes_at_once(clock: FakeClock, key_factory: KeyPool) -> None:
    keyset = fresh(clock, key_factory)
    rotated = rotate(keyset, clock.now(), POLICY, force=True, new_key=key_factory)
    assert keyset.next is not None and rotated.current is not None
    assert rotated.current.kid == keyset.next.kid


def test_schedule_state_machine(clock: FakeClock, key_factory: KeyPool) -> None:
    keyset = fresh(clock, key_factory)
    first, second = keyset.current, keyset.next
    assert first is not None and second is not None
    clock.advance(POLICY.rotate_every - 1)
    assert scheduled_step(keyset, clock.now(), POLICY, key_factory) is keyset
    clock.advance(1)
    keyset = scheduled_step(keyset, clock.now(), POLICY, key_factory)
    assert states(keyset)[first.kid] is KeyState.PREVIOUS
    assert states(keyset)[second.kid] is KeyState.CURRENT
    third = keyset.next
    assert third is not None and third.kid not in (first.kid, second.kid)
    # previous stays published for poll_interval + max_token_ttl + leeway, then retires.
    clock.advance(POLICY.previous_keep - 1)
    assert scheduled_step(keyset, clock.now(), POLICY, key_factory) is keyset
    clock.advance(1)
    keyset = scheduled_step(keyset, clock.now(), POLICY, key_factory)
    retired = keyset.get(first.kid)
    assert retired.state is KeyState.RETIRED and retired.retired_at == clock.now()
    assert first.kid not in {e["kid"] for e in keyset.jwks()["keys"]}
    # Retired keys are kept for audit until the retention period has passed.
    clock.advance(POLICY.retention - 1)
    assert prune(keyset, clock.now(), POLICY) is keyset
    clock.advance(1)
    pruned = prune(keyset, clock.now(), POLICY)
    assert first.kid not in states(pruned)
    assert len(pruned) == len(keyset) - 1


def test_schedule_waits_for_a_young_next_key(clock: FakeClock, key_factory: KeyPool) -> None:
    keyset = fresh(clock, key_factory)
    # The operator revoked the next key just before the scheduled rotation: its replacement is new.
    clock.advance(POLICY.rotate_every - 10)
    assert keyset.next is not None
    keyset = revoke(keyset, keyset.next.kid, clock.now(), POLICY, key_factory)
    replacement = keyset.next
    assert replacement is not None and replacement.created_at == clock.now()
    clock.advance(10)
    assert scheduled_step(keyset, clock.now(), POLICY, key_factory) is keyset
    clock.advance(POLICY.publish_lead - 10)
    stepped = scheduled_step(keyset, clock.now(), POLICY, key_factory)
    assert stepped.current is not None and stepped.current.kid == replacement.kid


def test_revoke_current_promotes_next_and_leaves_the_jwks(clock: FakeClock, key_factory: KeyPool) -> None:
    keyset = fresh(clock, key_factory)
    current, nxt = keyset.current, keyset.next
    assert current is not None and nxt is not None
    clock.advance(60)
    revoked = revoke(keyset, current.kid, clock.now(), POLICY, key_factory)
    assert revoked.get(current.kid).state is KeyState.REVOKED
    assert revoked.get(current.kid).revoked_at == clock.now()
    assert revoked.current is not None and revoked.current.kid == nxt.kid
    assert revoked.next is not None and revoked.next.kid not in (current.kid, nxt.kid)
    assert current.kid not in {e["kid"] for e in revoked.jwks()["keys"]}
    assert revoke(revoked, current.kid, clock.now(), POLICY, key_factory) is revoked


def test_revoke_next_replaces_it(clock: FakeClock, key_factory: KeyPool) -> None:
    keyset = fresh(clock, key_factory)
    assert keyset.next is not None and keyset.current is not None
    revoked = revoke(keyset, keyset.next.kid, clock.now(), POLICY, key_factory)
    assert revoked.current == keyset.current
    assert revoked.next is not None and revoked.next.kid != keyset.next.kid
    assert keyset.next.kid not in {e["kid"] for e in revoked.jwks()["keys"]}
    with pytest.raises(KeyNotFound):
        revoke(keyset, "no-such-kid", clock.now(), POLICY, key_factory)


def test_prune_never_drops_published_keys(clock: FakeClock, key_factory: KeyPool) -> None:
    keyset = fresh(clock, key_factory)
    clock.advance(10 * POLICY.retention)
    assert prune(keyset, clock.now(), POLICY) is keyset
    assert keyset.next is not None
    revoked = revoke(keyset, keyset.next.kid, clock.now(), POLICY, key_factory)
    clock.advance(POLICY.retention)
    pruned = prune(revoked, clock.now(), POLICY)
    assert {k.state for k in pruned} == {KeyState.CURRENT, KeyState.NEXT}


def test_policy_requires_publish_lead_to_cover_poll_cache_and_cooldown() -> None:
    with pytest.raises(ConfigError, match="publish_lead"):
        RotationPolicy(publish_lead=300, jwks_max_age=300, poll_interval=30, refetch_cooldown=30)
    policy = RotationPolicy(publish_lead=360, jwks_max_age=300, poll_interval=30, refetch_cooldown=30)
    assert policy.min_publish_lead == 360
    assert policy.previous_keep == policy.poll_interval + policy.max_token_ttl + policy.leeway


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alg": "HS256"},
        {"alg": "none"},
        {"max_token_ttl": -1},
        {"rotate_every": 60},  # shorter than publish_lead
    ],
)
def test_policy_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RotationPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_from_env() -> None:
    env = {
        "S2S_ALG": "Ed25519",
        "S2S_ROTATE_EVERY": "86400",
        "S2S_PUBLISH_LEAD": "900",
        "S2S_JWKS_MAX_AGE": "600",
        "S2S_MAX_TOKEN_TTL": "300",
        "OTHER_PUBLISH_LEAD": "1",
    }
    policy = RotationPolicy.from_env(environ=env)
    assert (policy.alg, policy.rotate_every, policy.publish_lead) == ("Ed25519", 86400, 900)
    assert (policy.jwks_max_age, policy.max_token_ttl) == (600, 300)
    assert RotationPolicy.from_env(environ={}) == RotationPolicy()
    assert RotationPolicy.from_env("APP_", {"APP_LEEWAY": "5"}).leeway == 5
    with pytest.raises(ConfigError, match="S2S_LEEWAY"):
        RotationPolicy.from_env(environ={"S2S_LEEWAY": "soon"})
    with pytest.raises(ConfigError, match="publish_lead"):
        RotationPolicy.from_env(environ={"S2S_PUBLISH_LEAD": "10"})


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ["PUBLISH_LEAD", "MAX_TOKEN_TTL", "LEEWAY", "POLL_INTERVAL", "ROTATE_EVERY"])
def test_policy_refuses_non_finite_times(name: str, raw: str) -> None:
    # float() reads "nan" and "inf"; a NaN publish_lead made every `now < safe_at` false, so an
    # early rotation went through unrefused, and NaN / inf windows never expire a previous key.
    with pytest.raises(ConfigError, match=f"S2S_{name}|{name.lower()}"):
        RotationPolicy.from_env(environ={f"S2S_{name}": raw})
