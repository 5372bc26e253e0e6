"""Client ids and their methods cannot be enumerated (issue 9, item 4), through a real ``s2s serve``.

Every client-authentication failure gets the same answer (status, headers, body); the precise
reason is in the server's log, which never holds the secret or the assertion.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.issuer.edge_support import AUD, Edge, Reply, basic, edge_issuer
from tests.issuer.helpers import make_assertion


def assertion_form(assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }


def without_kid(edge: Edge, key: ec.EllipticCurvePrivateKey) -> str:
    # kid is optional (RFC 7523): the registered keys are tried, and none verifies ``key``'s signature.
    signed = make_assertion(
        edge.pkj, now=time.time(), aud=edge.issuer.token_endpoint, header={"kid": None}, key=key
    )
    header = json.loads(base64.urlsafe_b64decode(signed.split(".")[0] + "=="))
    assert "kid" not in header
    return signed


def failures(edge: Edge) -> dict[str, tuple[Reply, str]]:
    """Each kind of failed client authentication: (the answer, the credential that must not leak)."""
    now, aud = time.time(), edge.issuer.token_endpoint
    stranger = ec.generate_private_key(ec.SECP256R1())
    victim_secret = edge.secrets["victim"]
    replayed = make_assertion(edge.pkj, now=now, aud=aud)
    assert edge.post(assertion_form(replayed)).status == 200
    cases = {
        "unknown id": (basic("nobody", victim_secret), None),
        "wrong secret": (basic("victim", victim_secret[:-2] + "xx"), None),
        "secret client sends an assertion": (
            None,
            make_assertion(edge.pkj, now=now, aud=aud, iss="victim", sub="victim"),
        ),
        "assertion client sends a secret": (basic(edge.pkj.client_id, victim_secret), None),
        "assertion without kid, no registered key verifies it": (None, without_kid(edge, stranger)),
        "assertion with unknown kid": (
            None,
            make_assertion(edge.pkj, now=now, aud=aud, header={"kid": "k9"}),
        ),
        "assertion with a bad signature": (None, make_assertion(edge.pkj, now=now, aud=aud, key=stranger)),
        "expired assertion": (None, make_assertion(edge.pkj, now=now - 3600, aud=aud)),
        "replayed assertion": (None, replayed),
        "assertion naming an unknown id": (
            None,
            make_assertion(edge.pkj, now=now, aud=aud, iss="ghost", sub="ghost"),
        ),
        "malformed basic": ("Basic " + base64.b64encode(b"victim-no-colon").decode(), None),
        "bearer scheme": ("Bearer abc.def.ghi", None),
    }
    out: dict[str, tuple[Reply, str]] = {}
    for n, (name, (authorization, assertion)) in enumerate(cases.items()):
        source = f"127.0.0.{20 + n}"
        if assertion is not None:
            out[name] = (edge.post(assertion_form(assertion), source=source), assertion)
        else:
            assert authorization is not None
            form = {"grant_type": "client_credentials", "audience": AUD}
            out[name] = (edge.post(form, authorization=authorization, source=source), authorization)
    form = {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": victim_secret}
    out["client_secret_post, unknown id"] = (edge.post(form, source="127.0.0.60"), victim_secret)
    form = {**form, "client_id": "victim", "client_secret": "wrong-" + victim_secret}
    out["client_secret_post, wrong secret"] = (edge.post(form, source="127.0.0.61"), victim_secret)
    return out


def test_every_client_authentication_failure_gets_the_same_answer(tmp_path: Path) -> None:
    with edge_issuer(tmp_path) as edge:
        answers = failures(edge)
        log = edge.log()
    reference = answers["unknown id"][0]
    assert reference.status == 401
    assert reference.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }

    def comparable(reply: Reply) -> tuple[int, dict[str, str], bytes]:
        return reply.status, {k: v for k, v in reply.headers.items() if k != "date"}, reply.body

    for name, (reply, credential) in answers.items():
        assert comparable(reply) == comparable(reference), name
        assert credential.encode() not in reply.body
        # The log says why, never with the credential.
        assert credential not in log, name
        for part in credential.split("."):
            if len(part) > 20:
                assert part not in log, name
    for reason in ("unknown client", "wrong secret", "kid", "already used", "signature", "expired"):
        assert reason in log, reason
