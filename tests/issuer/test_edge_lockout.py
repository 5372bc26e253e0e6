"""Nobody can lock a client out (issue 9, item 2), through a real ``s2s serve``.

The issuance budget is charged only after authentication succeeded; failed attempts are charged
per (client id, source address) and to an issuer-wide failure budget, so junk naming a client,
sent from other addresses, never delays that client's correct credentials.
"""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.issuer.edge_support import Edge, Reply, edge_issuer
from tests.issuer.helpers import make_assertion, make_pkj


def assertion_form(assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }


def assert_error(reply: Reply, status: int, error: str, *secrets: str) -> None:
    assert reply.status == status, reply.body
    assert reply.json()["error"] == error
    assert reply.headers["cache-control"] == "no-store"
    for secret in secrets:
        assert secret.encode() not in reply.body


def junk(edge: Edge, sources: range) -> None:
    """Wrong secrets and forged assertions naming the victims, one of each per source address."""
    forger = make_pkj(edge.pkj.client_id)  # same id and kid, another key: a forged signature
    for i in sources:
        source = f"127.0.0.{i}"
        assert edge.token("victim", "not-the-secret", source=source).status in (401, 429)
        forged = make_assertion(
            edge.pkj, now=time.time(), key=forger.private_key, aud=edge.issuer.token_endpoint
        )
        assert edge.post(assertion_form(forged), source=source).status in (401, 429)


def test_junk_from_other_addresses_never_spends_a_clients_budget(tmp_path: Path) -> None:
    # An issuance budget of 2 tokens (refilled every 100 s): before the fix, junk spent it.
    with edge_issuer(tmp_path, rate_limit="0.01", rate_burst="2") as edge:
        junk(edge, range(2, 42))
        first = edge.token("victim")
        assert first.status == 200, first.body
        good = make_assertion(edge.pkj, now=time.time(), aud=edge.issuer.token_endpoint)
        assert edge.post(assertion_form(good)).status == 200
        # The issuance budget itself still holds for the authenticated client.
        assert edge.token("victim").status == 200
        assert_error(edge.token("victim"), 429, "slow_down", edge.secrets["victim"])
        log = edge.log()
        assert edge.secrets["victim"] not in log and "not-the-secret" not in log


def test_failures_are_throttled_per_client_id_and_address(tmp_path: Path) -> None:
    with edge_issuer(tmp_path) as edge:
        # 10 failures allowed, then one every 2 s: a slow machine may see one refill, not more.
        statuses = [edge.token("victim", f"guess-{i}", source="127.0.0.9").status for i in range(14)]
        assert statuses[:10] == [401] * 10 and statuses[10:].count(429) >= 2, statuses
        throttled = edge.token("victim", "guess-x", source="127.0.0.9")
        assert_error(throttled, 429, "slow_down", "guess-x")
        assert int(throttled.headers["retry-after"]) >= 1
        # The same id from another address, and another id from that address, are still evaluated.
        assert edge.token("victim", "guess-y", source="127.0.0.10").status == 401
        assert edge.token("other", "guess-z", source="127.0.0.9").status == 401
        # ... and the victim's own correct credentials from its own address pass.
        assert edge.token("victim").status == 200
        # Unknown ids are throttled the same way (nothing tells them apart).
        unknown = [edge.token("nobody", f"guess-{i}", source="127.0.0.11").status for i in range(14)]
        assert unknown[:10] == [401] * 10 and unknown[10:].count(429) >= 2, unknown


def test_an_unsigned_assertion_naming_a_client_writes_no_state(tmp_path: Path) -> None:
    """Cheap checks come first: a forged assertion never consumes its jti (replay state)."""
    with edge_issuer(tmp_path) as edge:
        good = make_assertion(edge.pkj, now=time.time(), aud=edge.issuer.token_endpoint)
        header, payload, _ = good.split(".")
        other = ec.generate_private_key(ec.SECP256R1())
        forged = make_assertion(edge.pkj, now=time.time(), key=other, aud=edge.issuer.token_endpoint).split(
            "."
        )[2]
        # Same header and claims (same jti), wrong signature: refused, and the jti stays unused.
        assert edge.post(assertion_form(f"{header}.{payload}.{forged}"), source="127.0.0.5").status == 401
        assert edge.post(assertion_form(good)).status == 200
