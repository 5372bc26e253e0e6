"""A discrete-time model of issuer replicas, a shared key store and caching verifiers.

Used by the rotation tests to check the policy end to end: at every step each replica mints a
token with the signer it currently holds, and every token issued within the last
``max_token_ttl`` must verify (signature with joserfc, then ``exp``) for every verifier, against
the JWKS that verifier holds at that moment.

Order within a step at time ``t`` (settings must be whole multiples of ``step``), chosen so that
the worst lags of the continuous system are reached, not shortened by a step:

1. verifiers whose JWKS cache expired fetch it from a replica (that replica's possibly stale view
   of the store, as it was before this instant);
2. operator events (the CLI) change the store;
3. replicas whose poll is due load the store; until then they sign with what they had;
4. replica 0 runs the rotation schedule (and daily prune) and adopts its own change at once, as
   the issuer does;
5. each replica mints a token; every live token is checked by every verifier.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from s2s.keys import (
    SIGNING_ALGS,
    KeyFactory,
    KeySet,
    KeyState,
    LocalSigner,
    RotationPolicy,
    ensure_keys,
    prune,
    scheduled_step,
)
from s2s.keys.errors import RotationRefused

__all__ = ["Event", "Report", "simulate"]

Event = Callable[[KeySet, float], KeySet]
"""An operator action on the store at a step: (keyset, now) -> keyset; may raise RotationRefused."""

_REGISTRY = JWSRegistry(algorithms=list(SIGNING_ALGS))
_IMPORT = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}


@dataclass
class Report:
    steps: int = 0
    tokens: int = 0
    checks: int = 0
    skipped_revoked: int = 0
    refused: int = 0
    events: list[tuple[int, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0
    transitions: collections.Counter[tuple[str | None, str | None]] = field(
        default_factory=collections.Counter
    )


@dataclass
class _Token:
    compact: str
    kid: str
    iat: float
    exp: float
    replicas: list[int]


def _every(seconds: float, step: float) -> int:
    n = round(seconds / step)
    if n < 1 or abs(n * step - seconds) > 1e-6:
        raise ValueError(f"{seconds}s is not a positive multiple of the {step}s step")
    return n


def _transitions(before: KeySet, after: KeySet) -> list[tuple[str | None, str | None]]:
    old = {k.kid: k.state.value for k in before}
    out: list[tuple[str | None, str | None]] = []
    for key in after:
        was = old.pop(key.kid, None)
        if was != key.state.value:
            out.append((was, key.state.value))
    out.extend((state, None) for state in old.values())
    return out


def simulate(
    policy: RotationPolicy,
    *,
    start: float,
    steps: int,
    step: float,
    new_key: KeyFactory,
    events: Mapping[int, Event] | None = None,
    prune_every: float = 24 * 3600,
    keep_failures: int = 20,
) -> Report:
    """Run the model; replicas cover every poll phase, verifiers every cache phase.

    Half of the verifiers fetch the JWKS from the replica with the stalest view (worst for a new
    key), half from the one with the freshest view (worst for a key that just left the JWKS).
    """
    events = events or {}
    poll = _every(policy.poll_interval, step)
    max_age = _every(policy.jwks_max_age, step)
    ttl = _every(policy.max_token_ttl, step)
    prune_steps = _every(prune_every, step)
    replicas = poll
    report = Report()
    signer = LocalSigner()

    store = ensure_keys(KeySet(), start, policy, new_key)
    views = [store] * replicas
    loaded = [0] * replicas
    stale_caches: list[dict[str, Mapping[str, Any]]] = [{} for _ in range(max_age)]
    fresh_caches: list[dict[str, Mapping[str, Any]]] = [{} for _ in range(max_age)]
    # Replicas holding the same key at the same instant mint the same claims, hence the same
    # token: it is signed once and checked once per verifier, remembering who minted it.
    tokens: collections.deque[_Token] = collections.deque()
    verified: dict[str, bool] = {}
    imported: dict[str, Any] = {}

    published: dict[int, tuple[KeySet, dict[str, Mapping[str, Any]]]] = {}

    def jwks_of(view: KeySet) -> dict[str, Mapping[str, Any]]:
        # Keyed by identity; the entry holds the keyset so the id cannot be reused meanwhile.
        hit = published.get(id(view))
        if hit is None:
            if len(published) > 64:
                published.clear()
            hit = published[id(view)] = (view, {e["kid"]: e for e in view.jwks()["keys"]})
        return hit[1]

    def verify(token: _Token, entry: Mapping[str, Any]) -> bool:
        cached = verified.get(token.compact)
        if cached is None:
            key = imported.get(token.kid)
            if key is None:
                key = imported[token.kid] = _IMPORT[entry["kty"]].import_key(dict(entry))
            try:
                obj = jws.deserialize_compact(token.compact, key, registry=_REGISTRY)
                claims = json.loads(obj.payload)
                cached = obj.protected.get("kid") == token.kid and claims["exp"] == token.exp
            except JoseError:
                cached = False
            verified[token.compact] = cached
        return cached

    for i in range(steps):
        now = start + i * step
        report.steps += 1
        before = store
        # 1. verifier caches, from the views replicas held at the end of the previous step
        stalest = views[loaded.index(min(loaded))]
        freshest = views[loaded.index(max(loaded))]
        for phase in range(max_age):
            if i == 0 or (i + phase) % max_age == 0:
                stale_caches[phase] = jwks_of(stalest)
                fresh_caches[phase] = jwks_of(freshest)
        caches = stale_caches + fresh_caches
        # 2. the operator (CLI) writes the store, just before this instant
        event = events.get(i)
        if event is not None:
            try:
                store = event(store, now)
                report.events.append((i, "done"))
            except RotationRefused:
                report.refused += 1
                report.events.append((i, "refused"))
        # 3. polls: replica r polls at steps r, r + poll, r + 2 * poll, ...
        for r in range(replicas):
            if i == 0 or i % poll == r:
                views[r], loaded[r] = store, i
        # 4. replica 0 runs the schedule and adopts its own change at once
        stepped = scheduled_step(store, now, policy, new_key)
        if i % prune_steps == 0:
            stepped = prune(stepped, now, policy)
        if stepped is not store:
            store = views[0] = stepped
            loaded[0] = i
        report.transitions.update(_transitions(before, store))
        # 5. mint, then check every token issued within the last max_token_ttl
        exp = now + ttl * step
        minted: dict[str, _Token] = {}
        for r in range(replicas):
            key = views[r].current
            assert key is not None
            token = minted.get(key.kid)
            if token is None:
                compact = signer.sign(key, {"typ": "at+jwt"}, {"iat": now, "exp": exp})
                token = minted[key.kid] = _Token(compact, key.kid, now, exp, [])
                tokens.append(token)
                report.tokens += 1
            token.replicas.append(r)
        while tokens and tokens[0].exp <= now:
            verified.pop(tokens.popleft().compact, None)
        revoked = {k.kid for k in store.in_state(KeyState.REVOKED)}
        for token in tokens:
            if token.kid in revoked:
                report.skipped_revoked += 1
                continue
            alive = now < token.exp + policy.leeway
            for v, cache in enumerate(caches):
                report.checks += 1
                entry = cache.get(token.kid)
                if entry is not None and alive and verify(token, entry):
                    continue
                report.failure_count += 1
                if len(report.failures) < keep_failures:
                    reason = "kid not in its JWKS" if entry is None else "signature or exp"
                    kind = "stale" if v < max_age else "fresh"
                    report.failures.append(
                        f"step {i} (day {i * step / 86400:.2f}): {kind}-fetching verifier {v % max_age} "
                        f"refused a token of replicas {token.replicas} issued {now - token.iat:.0f}s ago: "
                        f"{reason}"
                    )
    return report
