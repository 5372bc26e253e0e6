"""``s2s keys rotate`` / ``revoke`` against a live ``s2s serve`` while tokens are requested.

Every token is verified by PyJWT's ``PyJWKClient`` (an independent verifier) against the served
JWKS, the way a resource service would: it caches the JWKS for the served max-age and refetches on
an unknown kid.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.conftest import (
    AUDIENCE,
    PUBLISH_LEAD,
    SCOPE,
    Deployment,
    RunningIssuer,
)
from tests.support import BoundedLoad

__all__: list[str] = []

Verify = Callable[[str, jwt.PyJWKClient], dict[str, Any]]

ROTATIONS = 3
LOAD_THREADS = 3
TOKENS_PER_KEY = 20  # verified tokens under each key before the next step
# Bounded by the work the test must see done (rotations completed, tokens verified), not by a time
# window: on a loaded 2-core machine the same work takes longer. Safety nets only, far above what
# the work takes (the measured figures are printed).
LOAD_CEILING = 240.0
PUBLISH_CEILING = 60.0


def _form() -> dict[str, str]:
    return {"grant_type": "client_credentials", "audience": AUDIENCE, "scope": SCOPE}


def fetch_token(issuer: RunningIssuer, deployment: Deployment) -> str:
    response = httpx.post(
        issuer.token_endpoint,
        data=_form(),
        auth=(deployment.client_id, deployment.client_secret),
        timeout=10,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token: str = response.json()["access_token"]
    return token


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


@dataclass(frozen=True, slots=True)
class Outcome:
    started: float  # time.monotonic() before the request was sent
    finished: float  # ... and when its response had arrived
    kid: str | None
    error: str | None  # None: the token was issued and verified


class TokenLoad(BoundedLoad):
    """Threads that fetch tokens over HTTP and verify each one until the test has seen its work
    done (or ``LOAD_CEILING``)."""

    def __init__(
        self, issuer: RunningIssuer, deployment: Deployment, verify: Verify, keys: jwt.PyJWKClient
    ) -> None:
        self._issuer = issuer
        self._deployment = deployment
        self._verify = verify
        self._keys = keys
        self.outcomes: list[Outcome] = []
        self.first_token: dict[str, str] = {}  # kid -> the first token it signed
        super().__init__(LOAD_THREADS, LOAD_CEILING)

    def stop(self) -> list[Outcome]:
        self.join()
        return sorted(self.outcomes, key=lambda o: o.finished)

    def verified(self, kid: str) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.kid == kid and o.error is None)

    def wait_for(self, kid: str, count: int = TOKENS_PER_KEY) -> float:
        """Until ``count`` tokens signed with ``kid`` were verified; the seconds it took."""
        return self.wait_until(
            lambda: self.verified(kid) >= count,
            lambda: f"{count} verified tokens with kid {kid} (errors so far: {self.errors()[:3]})",
        )

    def errors(self) -> list[str]:
        with self._lock:
            return [o.error for o in self.outcomes if o.error is not None]

    def _record(self, outcome: Outcome, token: str | None = None) -> None:
        with self._lock:
            self.outcomes.append(outcome)
            if token is not None and outcome.kid is not None:
                self.first_token.setdefault(outcome.kid, token)

    def _worker(self) -> None:
        auth = (self._deployment.client_id, self._deployment.client_secret)
        with httpx.Client(auth=auth, timeout=10, trust_env=False) as http:
            while self._claim() is not None:
                started = time.monotonic()
                kid = None
                try:
                    response = http.post(self._issuer.token_endpoint, data=_form())
                    finished = time.monotonic()
                    if response.status_code != 200:
                        # An RFC 6749 error body: a code and a description, no secrets.
                        error = f"HTTP {response.status_code}: {response.text[:200]}"
                        self._record(Outcome(started, finished, None, error))
                        continue
                    token = response.json()["access_token"]
                    kid = kid_of(token)
                    self._verify(token, self._keys)
                except Exception as exc:
                    # Type and message only: PyJWT's messages name kids and claims, never the token.
                    self._record(Outcome(started, time.monotonic(), kid, f"{type(exc).__name__}: {exc}"))
                    continue
                self._record(Outcome(started, finished, kid, None), token)


def _kid_order_violations(outcomes: list[Outcome], order: list[str]) -> list[str]:
    """Tokens signed by an older key than one the server had already used before they were asked for.

    Causality, no timing margin: once any response carried kid N, the server had installed that
    keyset, and keysets only move forward, so a request sent afterwards must get kid N or newer.
    """
    rank = {kid: i for i, kid in enumerate(order)}
    by_finish = sorted(outcomes, key=lambda o: o.finished)
    finished = [o.finished for o in by_finish]
    newest_so_far: list[int] = []
    best = -1
    for o in by_finish:
        best = max(best, rank[o.kid]) if o.kid is not None else best
        newest_so_far.append(best)
    violations = []
    for o in outcomes:
        if o.kid is None:
            continue
        i = bisect.bisect_left(finished, o.started)
        if i and newest_so_far[i - 1] > rank[o.kid]:
            violations.append(f"request at {o.started:.3f} got {o.kid} after {order[newest_so_far[i - 1]]}")
    return violations


def _wait_until_rotation_is_safe(next_key: dict[str, Any]) -> None:
    # The CLI refuses to promote a next key published for less than publish_lead (wall clock).
    delay = next_key["created_at"] + PUBLISH_LEAD + 0.05 - time.time()
    if delay > 0:
        time.sleep(delay)


def _one(changes: list[dict[str, Any]], frm: str | None, to: str | None) -> dict[str, Any]:
    found = [c for c in changes if c["from"] == frm and c["to"] == to]
    assert len(found) == 1, f"expected one {frm} -> {to} change in {changes}"
    return found[0]


@pytest.mark.timeout(LOAD_CEILING + 60)
def test_rotation_under_load_loses_no_request(
    deployment: Deployment, issuer: RunningIssuer, verify_token: Verify, new_jwk_client: Any
) -> None:
    initial = deployment.store_keys()
    (kid0,) = [k for k, rec in initial.items() if rec["state"] == "current"]
    (next_key,) = [rec for rec in initial.values() if rec["state"] == "next"]
    keys = new_jwk_client()
    old_token = fetch_token(issuer, deployment)
    assert kid_of(old_token) == kid0
    verify_token(old_token, keys)

    load = TokenLoad(issuer, deployment, verify_token, keys)
    order = [kid0]
    cli_seconds: list[float] = []
    reached_seconds: list[float] = []
    created = set(initial)
    load.start()
    try:
        load.wait_for(kid0)
        for _ in range(ROTATIONS):
            _wait_until_rotation_is_safe(next_key)
            began = time.monotonic()
            out = deployment.cli_json("keys", "rotate")
            cli_seconds.append(time.monotonic() - began)
            promoted = _one(out["changes"], "next", "current")
            demoted = _one(out["changes"], "current", "previous")
            new_next = _one(out["changes"], None, "next")
            assert promoted["kid"] == next_key["kid"] and demoted["kid"] == order[-1], out["changes"]
            order.append(promoted["kid"])
            created.add(new_next["kid"])
            (next_key,) = [k for k in out["keys"] if k["kid"] == new_next["kid"]]
            # Tokens flow under the new key before the next rotation starts.
            reached_seconds.append(load.wait_for(promoted["kid"]))
        # More load once the last rotation has reached the server: counted, not timed.
        load.wait_for(order[-1], 2 * TOKENS_PER_KEY)
    finally:
        outcomes = load.stop()

    per_kid = Counter(o.kid for o in outcomes if o.error is None)
    errors = [o.error for o in outcomes if o.error is not None]
    span = outcomes[-1].finished - outcomes[0].started
    summary = (
        f"{len(outcomes)} token requests in {span:.1f}s over {ROTATIONS} rotations: "
        f"{len(outcomes) - len(errors)} issued and verified, {len(errors)} failed; "
        f"tokens per kid in rotation order: {[per_kid[k] for k in order]}; "
        f"each `s2s keys rotate` process took {', '.join(f'{t:.1f}s' for t in cli_seconds)}; "
        f"{TOKENS_PER_KEY} tokens under each new key verified within "
        f"{', '.join(f'{t:.2f}s' for t in reached_seconds)} of its rotation"
    )
    print(f"\n{summary}")
    assert not errors, f"{summary}; first failures: {errors[:5]}"
    assert sum(per_kid.values()) == len(outcomes), summary
    assert set(per_kid) == set(order) and all(per_kid[k] > 0 for k in order), summary
    violations = _kid_order_violations(outcomes, order)
    assert not violations, f"{summary}; {len(violations)} tokens signed by a superseded key: {violations[:5]}"
    # Once the server answered with the last key, every later request got it (causality, as the
    # violations check above; here stated for the end of the run, where the most load is).
    reached = min(o.finished for o in outcomes if o.kid == order[-1])
    late = [o for o in outcomes if o.started > reached]
    assert late and all(o.kid == order[-1] for o in late), (
        f"{summary}; tokens requested after the last key was first used: "
        f"{Counter(o.kid for o in late)}, expected only {order[-1]}"
    )
    assert kid_of(fetch_token(issuer, deployment)) == order[-1]

    # The token fetched before the first rotation still verifies, with the long-running verifier
    # and with one that fetches the JWKS afresh; so does the first token of every key since.
    for token in [old_token, *load.first_token.values()]:
        verify_token(token, keys)
        verify_token(token, new_jwk_client())

    served = issuer.jwks_kids()
    assert set(order) <= set(served), f"served JWKS {served} lacks a previous key of {order}"
    assert next_key["kid"] in served and len(served) == len(set(served)) == ROTATIONS + 2

    store = deployment.store_keys()
    assert created <= set(store) and len(store) == 2 + ROTATIONS, (
        f"keys lost or invented: created {sorted(created)}, store holds {sorted(store)}"
    )
    states = {kid: rec["state"] for kid, rec in store.items()}
    assert [states[k] for k in order] == ["previous"] * ROTATIONS + ["current"], states
    assert states[next_key["kid"]] == "next", states
    assert {k for k, rec in store.items() if rec["published"]} == set(served)


def test_revoking_the_current_key_unpublishes_it_within_the_poll_interval(
    deployment: Deployment, issuer: RunningIssuer, verify_token: Verify, new_jwk_client: Any
) -> None:
    before = deployment.store_keys()
    (revoked,) = [k for k, rec in before.items() if rec["state"] == "current"]
    (successor,) = [k for k, rec in before.items() if rec["state"] == "next"]
    old_token = fetch_token(issuer, deployment)
    assert kid_of(old_token) == revoked
    verify_token(old_token, new_jwk_client())
    assert revoked in issuer.jwks_kids()

    out = deployment.cli_json("keys", "revoke", "--kid", revoked)
    written = time.monotonic()
    assert _one(out["changes"], "current", "revoked")["kid"] == revoked
    assert _one(out["changes"], "next", "current")["kid"] == successor
    replacement = _one(out["changes"], None, "next")["kid"]

    # Within one poll interval on a machine with time to spare; the ceiling only guards against a
    # replica that never reloads (the measured time is printed).
    while revoked in (served := issuer.jwks_kids()):
        waited = time.monotonic() - written
        assert waited < PUBLISH_CEILING, f"{revoked} still served {waited:.1f}s after the revoke"
        time.sleep(0.02)
    print(f"\nrevoked key left the served JWKS {time.monotonic() - written:.2f}s after `s2s keys revoke`")
    assert set(served) == {successor, replacement}

    new_token = fetch_token(issuer, deployment)
    assert kid_of(new_token) == successor
    verify_token(new_token, new_jwk_client())
    with pytest.raises(jwt.PyJWKClientError, match="Unable to find a signing key"):
        verify_token(old_token, new_jwk_client())

    after = deployment.store_keys()
    assert set(before) <= set(after), "a key was lost"
    assert after[revoked]["state"] == "revoked" and after[revoked]["published"] is False
