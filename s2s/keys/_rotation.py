"""The rotation policy: pure functions of (keyset, now, policy). No I/O, no clock reads.

Timing rules, all enforced here:

* a ``next`` key is published at least ``publish_lead`` before it signs, and ``publish_lead`` covers
  the store poll interval of the replicas, the JWKS ``max-age`` and a verifier's refetch cooldown,
  so every verifier holds the key before the first token it signs exists;
* a demoted key stays ``previous`` (published) until every token it may have signed has expired:
  a replica may still sign with it for one poll interval after the demotion, then the token lives
  ``max_token_ttl`` and a verifier accepts it ``leeway`` longer;
* ``retired`` keys are kept for audit until ``retention`` has passed, then :func:`prune` drops them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from s2s._env import EnvReader
from s2s.errors import ConfigError
from s2s.keys._model import DEFAULT_ALG, SIGNING_ALGS, KeySet, KeyState, SigningKey, generate_key
from s2s.keys.errors import RotationRefused

if TYPE_CHECKING:
    from s2s.secrets._source import SecretSource

__all__ = [
    "KeyFactory",
    "RotationPolicy",
    "alg_for",
    "ensure_keys",
    "format_time",
    "local_key_factory",
    "prune",
    "revoke",
    "rotate",
    "rotation_due",
    "safe_at",
    "scheduled_step",
    "with_alg",
]

KeyFactory = Callable[[str, float], SigningKey]
"""(alg, now) -> a new key in state ``next``. Injected so the policy stays free of I/O."""


def local_key_factory(alg: str, now: float) -> SigningKey:
    """New keys with a local private JWK (the default outside KMS)."""
    return generate_key(alg, now=now, state=KeyState.NEXT)


def format_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    # None: new keys keep the algorithm the keyset signs with (verifiers may allow only that one);
    # a brand-new keyset gets DEFAULT_ALG.
    alg: str | None = None
    rotate_every: float = 7 * 24 * 3600
    publish_lead: float = 3600
    max_token_ttl: float = 3600
    leeway: float = 60
    # What publish_lead must cover; these are the issuer's and verifiers' own settings.
    jwks_max_age: float = 300
    refetch_cooldown: float = 30
    poll_interval: float = 30
    retention: float = 30 * 24 * 3600

    def __post_init__(self) -> None:
        if self.alg is not None and self.alg not in SIGNING_ALGS:
            raise ConfigError(f"unsupported signing alg {self.alg!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            # Finite too: float() reads "nan", and a NaN publish_lead would make every refusal
            # comparison false, so an early rotation would pass unrefused.
            if f.name != "alg" and (
                not isinstance(value, int | float) or not math.isfinite(value) or value < 0
            ):
                raise ConfigError(f"rotation setting {f.name} must be a finite number >= 0")
        if self.publish_lead < self.min_publish_lead:
            raise ConfigError(
                f"publish_lead {self.publish_lead:g}s is shorter than poll_interval + jwks_max_age + "
                f"refetch_cooldown = {self.min_publish_lead:g}s: verifiers could meet the key before its JWKS"
            )
        if self.rotate_every and self.rotate_every < self.publish_lead:
            raise ConfigError("rotate_every must be at least publish_lead")

    @property
    def min_publish_lead(self) -> float:
        return self.poll_interval + self.jwks_max_age + self.refetch_cooldown

    @property
    def previous_keep(self) -> float:
        """How long a demoted key stays published."""
        return self.poll_interval + self.max_token_ttl + self.leeway

    @classmethod
    def from_env(
        cls,
        prefix: str = "S2S_",
        environ: Mapping[str, str] | None = None,
        *,
        secrets: SecretSource | None = None,
    ) -> RotationPolicy:
        """``S2S_ALG`` and the timings (``S2S_ROTATE_EVERY``, ``S2S_PUBLISH_LEAD``, ``S2S_MAX_TOKEN_TTL``,
        ``S2S_LEEWAY``, ``S2S_JWKS_MAX_AGE``, ``S2S_REFETCH_COOLDOWN``, ``S2S_POLL_INTERVAL``,
        ``S2S_RETENTION``), durations in seconds or with a unit (``7d``, ``1h``)."""
        env = EnvReader(prefix, environ, secrets=secrets)
        return env.build(cls, cls.read(env))

    @classmethod
    def read(cls, env: EnvReader) -> dict[str, Any]:
        """This policy's fields from ``env`` (for settings that embed a policy): build with
        ``env.build(RotationPolicy, values)`` once every other setting is read too."""
        d = cls()
        values: dict[str, Any] = {"alg": env.choice("ALG", SIGNING_ALGS)}
        for f in fields(cls):
            if f.name != "alg":
                values[f.name] = env.duration(f.name.upper(), getattr(d, f.name))
        return values


def alg_for(keyset: KeySet, policy: RotationPolicy) -> str:
    """The algorithm of the next key made for ``keyset``."""
    if policy.alg is not None:
        return policy.alg
    signer = keyset.current or keyset.next
    return signer.alg if signer is not None else DEFAULT_ALG


def ensure_keys(
    keyset: KeySet, now: float, policy: RotationPolicy, new_key: KeyFactory = local_key_factory
) -> KeySet:
    """A keyset with a current and a next key. A brand-new keyset signs at once: nobody trusts it yet."""
    if keyset.current is None:
        candidate = keyset.next
        if candidate is None:
            candidate = new_key(alg_for(keyset, policy), now)
            keyset = keyset.add(candidate)
        keyset = keyset.replace_key(candidate.with_state(KeyState.CURRENT, activated_at=now))
    if keyset.next is None:
        keyset = keyset.add(new_key(alg_for(keyset, policy), now))
    return keyset


def _expire_previous(keyset: KeySet, now: float, policy: RotationPolicy) -> KeySet:
    for key in keyset.in_state(KeyState.PREVIOUS):
        demoted = key.deactivated_at if key.deactivated_at is not None else key.created_at
        if now >= demoted + policy.previous_keep:
            keyset = keyset.replace_key(key.with_state(KeyState.RETIRED, retired_at=now))
    return keyset


def _promote(keyset: KeySet, now: float, policy: RotationPolicy, new_key: KeyFactory) -> KeySet:
    nxt = keyset.next
    assert nxt is not None
    current = keyset.current
    if current is not None:
        keyset = keyset.replace_key(current.with_state(KeyState.PREVIOUS, deactivated_at=now))
    keyset = keyset.replace_key(nxt.with_state(KeyState.CURRENT, activated_at=now))
    return keyset.add(new_key(alg_for(keyset, policy), now))


def safe_at(key: SigningKey, policy: RotationPolicy) -> float:
    """When a ``next`` key has been published long enough to sign."""
    return key.created_at + policy.publish_lead


def rotation_due(keyset: KeySet, policy: RotationPolicy) -> float | None:
    """When the schedule promotes ``next``: ``rotate_every`` after the current key became current,
    and not before the next key has been published long enough. None: no schedule, or no current
    key."""
    current = keyset.current
    if not policy.rotate_every or current is None:
        return None
    activated = current.activated_at if current.activated_at is not None else current.created_at
    due = activated + policy.rotate_every
    return due if keyset.next is None else max(due, safe_at(keyset.next, policy))


def scheduled_step(
    keyset: KeySet, now: float, policy: RotationPolicy, new_key: KeyFactory = local_key_factory
) -> KeySet:
    """What the schedule does at ``now``. Returns ``keyset`` itself when nothing changes."""
    before = keyset
    keyset = _expire_previous(ensure_keys(keyset, now, policy, new_key), now, policy)
    due = rotation_due(keyset, policy)
    if due is not None and now >= due:
        keyset = _promote(keyset, now, policy, new_key)
    return before if keyset == before else keyset


def rotate(
    keyset: KeySet,
    now: float,
    policy: RotationPolicy,
    *,
    force: bool = False,
    new_key: KeyFactory = local_key_factory,
) -> KeySet:
    """Promote ``next`` to ``current`` now (the operator's ``s2s keys rotate``).

    Refused while the next key has not been published for ``publish_lead``, unless ``force``: a
    forced rotation can make verifiers with a cached JWKS refuse tokens until they refetch.
    """
    keyset = _expire_previous(ensure_keys(keyset, now, policy, new_key), now, policy)
    nxt = keyset.next
    assert nxt is not None
    ready = safe_at(nxt, policy)
    if now < ready and not force:
        raise RotationRefused(
            f"next key {nxt.kid} has been published for {now - nxt.created_at:.0f}s, less than "
            f"publish_lead {policy.publish_lead:g}s; rotation is safe from {format_time(ready)} "
            "(or force it, if a key is compromised)",
            safe_at=ready,
        )
    return _promote(keyset, now, policy, new_key)


def revoke(
    keyset: KeySet, kid: str, now: float, policy: RotationPolicy, new_key: KeyFactory = local_key_factory
) -> KeySet:
    """Emergency: the key leaves the JWKS at once. Revoking the signer promotes ``next`` at once."""
    key = keyset.get(kid)
    if key.state is KeyState.REVOKED:
        return keyset
    keyset = keyset.replace_key(key.with_state(KeyState.REVOKED, revoked_at=now))
    if key.state is KeyState.CURRENT:
        nxt = keyset.next
        if nxt is not None:
            keyset = keyset.replace_key(nxt.with_state(KeyState.CURRENT, activated_at=now))
    return ensure_keys(keyset, now, policy, new_key)


def prune(keyset: KeySet, now: float, policy: RotationPolicy) -> KeySet:
    """Drop retired and revoked keys older than ``retention``; published keys are never pruned."""
    gone = []
    for key in keyset.in_state(KeyState.RETIRED, KeyState.REVOKED):
        since = key.retired_at if key.state is KeyState.RETIRED else key.revoked_at
        if since is not None and now >= since + policy.retention:
            gone.append(key.kid)
    return keyset.without(gone) if gone else keyset


def with_alg(policy: RotationPolicy, alg: str) -> RotationPolicy:
    return replace(policy, alg=alg)
