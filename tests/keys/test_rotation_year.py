"""The rotation policy over a simulated year: no valid token is ever refused.

The model (tests/keys/simulation.py) has replicas that see the store only when they poll and
verifiers that cache the JWKS for ``jwks_max_age``. Timings are whole hours so lags span several
steps; the negative tests show the same check catches a policy that is too eager.
"""

from __future__ import annotations

import dataclasses

from s2s.keys import KeySet, RotationPolicy, revoke, rotate
from s2s.keys._rotation import safe_at
from s2s.keys.errors import RotationRefused
from tests.keys.conftest import KeyPool
from tests.keys.simulation import Event, simulate

HOUR = 3600.0
DAY = 24 * HOUR
START = 1_700_000_000.0

# poll 6 h, JWKS cache 4 h, refetch cooldown 1 h -> publish_lead is exactly its minimum, 11 h.
POLICY = RotationPolicy(
    alg="ES256",
    rotate_every=7 * DAY,
    publish_lead=11 * HOUR,
    max_token_ttl=6 * HOUR,
    leeway=60,
    jwks_max_age=4 * HOUR,
    refetch_cooldown=1 * HOUR,
    poll_interval=6 * HOUR,
    retention=30 * DAY,
)


def at(day: float, hour: float = 0) -> int:
    return round((day * DAY + hour * HOUR) / HOUR)


def manual_rotation(keyset: KeySet, now: float) -> KeySet:
    return rotate(keyset, now, POLICY)


def emergency_revoke(keyset: KeySet, now: float) -> KeySet:
    current, nxt = keyset.current, keyset.next
    assert current is not None and nxt is not None
    # The promoted key has been published long enough: the revocation itself breaks nothing.
    assert now >= safe_at(nxt, POLICY)
    return revoke(keyset, current.kid, now, POLICY)


def revoke_next(keyset: KeySet, now: float) -> KeySet:
    assert keyset.next is not None
    return revoke(keyset, keyset.next.kid, now, POLICY)


def test_a_year_of_rotation_never_refuses_a_valid_token(key_factory: KeyPool) -> None:
    events: dict[int, Event] = {
        at(3): manual_rotation,  # next key published since day 0: allowed
        at(3, 2): manual_rotation,  # its successor is 2 h old: refused
        at(47, 5): manual_rotation,
        at(150, 13): emergency_revoke,
        at(151, 2): manual_rotation,  # the key created by the revocation is 13 h old: allowed
        at(220, 7): revoke_next,
        at(220, 9): manual_rotation,  # replacement next key is 2 h old: refused
    }
    report = simulate(POLICY, start=START, steps=at(365), step=HOUR, new_key=key_factory, events=events)
    assert report.failures == [], f"{report.failure_count} refusals, first: {report.failures[:5]}"
    assert report.steps == 8760
    assert report.events == [
        (at(3), "done"),
        (at(3, 2), "refused"),
        (at(47, 5), "done"),
        (at(150, 13), "done"),
        (at(151, 2), "done"),
        (at(220, 7), "done"),
        (at(220, 9), "refused"),
    ]
    # every transition of the state machine happened, many times for the routine ones
    t = report.transitions
    assert t[("next", "current")] >= 52
    assert t[("current", "previous")] >= 51
    assert t[("previous", "retired")] >= 50
    assert t[("retired", None)] >= 40  # pruned after retention
    assert t[("current", "revoked")] == 1
    assert t[("next", "revoked")] == 1
    assert t[("revoked", None)] == 2
    # stale replicas did sign with the revoked key after the revocation; those tokens are exempt
    assert report.skipped_revoked > 0
    # at least 6 live tokens x 8 verifiers (stale- and fresh-fetching x 4 cache phases), hourly
    assert report.checks >= (8760 - 6) * 6 * 8


def short_run(policy: RotationPolicy, key_factory: KeyPool, events: dict[int, Event] | None = None) -> int:
    report = simulate(policy, start=START, steps=at(22), step=HOUR, new_key=key_factory, events=events)
    return report.failure_count


def test_the_model_passes_the_real_policy_on_a_short_run(key_factory: KeyPool) -> None:
    assert short_run(POLICY, key_factory) == 0


def test_the_model_catches_a_publish_lead_shorter_than_poll_plus_cache(key_factory: KeyPool) -> None:
    eager = dataclasses.replace(POLICY)
    # Validation refuses this policy; bypass it to prove the simulation would notice.
    object.__setattr__(eager, "publish_lead", 8 * HOUR)

    def rotations(policy: RotationPolicy) -> dict[int, Event]:
        # The schedule alone never meets a young next key; rotating twice in a row does. The
        # six pairs start at every hour of the 6 h poll cycle.
        def rotate_asap(keyset: KeySet, now: float) -> KeySet:
            return rotate(keyset, now, policy)

        events: dict[int, Event] = {}
        for day in range(6):
            events[at(1 + day, day)] = rotate_asap
            events[at(1 + day, day + 8)] = rotate_asap
        return events

    assert short_run(eager, key_factory, rotations(eager)) > 0
    # with the real lead the second rotation of each pair is refused, and nothing breaks
    assert short_run(POLICY, key_factory, rotations(POLICY)) == 0


def test_the_model_catches_unpublishing_previous_keys_too_early(key_factory: KeyPool) -> None:
    class ForgetsPollLag(RotationPolicy):
        __slots__ = ()

        @property
        def previous_keep(self) -> float:
            return self.max_token_ttl + self.leeway

    assert short_run(ForgetsPollLag(**dataclasses.asdict(POLICY)), key_factory) > 0


def test_the_model_catches_a_forced_early_rotation(key_factory: KeyPool) -> None:
    def forced(keyset: KeySet, now: float) -> KeySet:
        return rotate(keyset, now, POLICY, force=True)

    def unforced(keyset: KeySet, now: float) -> KeySet:
        return rotate(keyset, now, POLICY)

    assert short_run(POLICY, key_factory, {at(7, 1): forced}) > 0
    # the same moment without force is refused, and nothing breaks
    refused: list[bool] = []

    def attempt(keyset: KeySet, now: float) -> KeySet:
        try:
            return unforced(keyset, now)
        except RotationRefused:
            refused.append(True)
            raise

    assert short_run(POLICY, key_factory, {at(7, 1): attempt}) == 0
    assert refused == [True]
