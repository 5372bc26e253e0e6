"""Issue 5, end to end: two issuer replicas on one AWS deployment survive rotation under load.

``moto_server`` stands in for AWS. Two ``s2s serve`` processes share a Secrets Manager key store, a
Secrets Manager client registry and DynamoDB replay/rate state, and publish the same issuer URL
(the public name a load balancer would carry). The example resource service (uvicorn, verifier
plugin) fetches the JWKS from replica A. A bounded load generator asks both replicas in turn for
tokens, verifies each with PyJWT and calls ``GET /orders`` with it, while ``s2s keys rotate`` runs
in its own process again and again. A second variant signs with KMS keys (moto's KMS).

moto's KMS ignores ``MessageType=DIGEST`` (it hashes again) and uses the maximum PSS salt length,
so a PS256 signature from moto verifies nowhere else: the KMS signer sends ``MessageType=RAW`` and
signs ES256 (ECC_NIST_P256), which is what this test exercises.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from s2s.client import PrivateKeyJWT
from s2s.oauth import JWT_BEARER_ASSERTION_TYPE
from tests.e2e.aws import (  # noqa: F401 - aws, moto: fixtures
    AwsDeployment,
    ResourceService,
    aws,
    moto,
    running_resource_service,
)
from tests.e2e.conftest import AUDIENCE, CLIENT_ID, SCOPE, RunningIssuer, running_issuer
from tests.support import BoundedLoad

__all__: list[str] = []

# The public issuer URL both replicas put in `iss` (behind an imaginary load balancer); each
# replica listens on its own port of 127.0.0.1.
SHARED_ISSUER = "https://issuer.e2e.internal"
SHARED_TOKEN_ENDPOINT = f"{SHARED_ISSUER}/oauth2/token"
ASSERTION_CLIENT = "signed-caller"

# Shortened timings: publish_lead just above poll_interval + jwks_max_age + refetch_cooldown (1.5 s).
POLL_INTERVAL = 0.3
JWKS_MAX_AGE = 1
REFETCH_COOLDOWN = 0.2
PUBLISH_LEAD = 1.6
TIMING_ENV = {
    "S2S_POLL_INTERVAL": str(POLL_INTERVAL),
    "S2S_JWKS_MAX_AGE": str(JWKS_MAX_AGE),
    "S2S_REFETCH_COOLDOWN": str(REFETCH_COOLDOWN),
    "S2S_PUBLISH_LEAD": str(PUBLISH_LEAD),
}

LOAD_THREADS = 2
TOKENS_PER_KEY_AND_REPLICA = 3  # before the next rotation, each replica signs with the new key
TOKENS_AFTER_LAST_ROTATION = 20  # more verified load once the last rotation reached both replicas
# The test is bounded by the work it must see done (rotations completed, tokens verified), not by
# a time window: on a loaded 2-core machine running seven processes the same work takes longer.
# These are safety nets only, far above what the work takes (the figures are printed).
LOAD_CEILING = 540.0
CONVERGENCE_CEILING = 120.0


@dataclass(frozen=True, slots=True)
class Replicas:
    deployment: AwsDeployment
    a: RunningIssuer
    b: RunningIssuer
    resource: ResourceService
    client_secret: str
    assertion_key: PrivateKeyJWT
    signer: str

    @property
    def both(self) -> tuple[RunningIssuer, RunningIssuer]:
        return (self.a, self.b)


@pytest.fixture(params=["local", "aws-kms"])
def replicas(request: pytest.FixtureRequest, aws: AwsDeployment) -> Iterator[Replicas]:  # noqa: F811
    """Keys, clients and state created by the CLI on moto, then two replicas and the resource service."""
    signer: str = request.param
    table = f"{aws.prefix}-state"
    env = {**aws.env, **TIMING_ENV, "S2S_STATE": f"dynamodb://{table}", "S2S_SIGNER": signer}
    deployment = AwsDeployment(aws.root, env, aws.moto_url, aws.prefix)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = PrivateKeyJWT(pem)
    jwks_file = aws.root / "signed-caller.jwks.json"
    jwks_file.write_text(json.dumps(key.jwks()))

    def add_clients() -> str:
        added = deployment.cli_json("clients", "add", CLIENT_ID, "--audience", AUDIENCE, "--scope", SCOPE)
        deployment.cli_json(
            "clients",
            "add",
            ASSERTION_CLIENT,
            "--audience",
            AUDIENCE,
            "--scope",
            SCOPE,
            "--jwks",
            str(jwks_file),
        )
        secret: str = added["client_secret"]
        return secret

    # Independent CLI processes run side by side: the setup is most of this test's time.
    with ThreadPoolExecutor(3) as pool:
        init = pool.submit(
            deployment.cli_json, "keys", "init", *(["--signer", "aws-kms"] if signer == "aws-kms" else [])
        )
        state = pool.submit(deployment.cli, "state", "init")
        clients = pool.submit(add_clients)
        init.result()
        created = state.result()
        assert created.returncode == 0 and table in created.stdout, created.stderr
        secret = clients.result()
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        starting = [
            pool.submit(stack.enter_context, running_issuer(env, aws.root, issuer_url=SHARED_ISSUER))
            for _ in range(2)
        ]
        a, b = (f.result() for f in starting)
        resource_env = {
            **env,
            "S2S_VERIFIER_ISSUER": SHARED_ISSUER,
            "S2S_VERIFIER_AUDIENCE": AUDIENCE,
            "S2S_VERIFIER_JWKS_URI": a.jwks_uri,
            "S2S_VERIFIER_REFETCH_COOLDOWN": str(REFETCH_COOLDOWN),
            "S2S_VERIFIER_LEEWAY": "5",
        }
        resource = stack.enter_context(running_resource_service(resource_env, aws.root))
        yield Replicas(deployment, a, b, resource, secret, key, signer)


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def verify_with_pyjwt(token: str, keys: jwt.PyJWKClient) -> dict[str, Any]:
    assert jwt.get_unverified_header(token).get("typ") == "at+jwt"
    claims: dict[str, Any] = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        issuer=SHARED_ISSUER,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["client_id"] == CLIENT_ID and claims["scope"] == SCOPE, claims
    return claims


@dataclass(frozen=True, slots=True)
class Outcome:
    replica: str
    kid: str | None
    error: str | None  # None: issued, verified by PyJWT, and accepted (200) by the resource service


class Load(BoundedLoad):
    """Threads that take turns between the replicas: fetch a token, verify it with PyJWT, call
    ``GET /orders`` with it, until the test has seen its work done (or ``LOAD_CEILING``)."""

    def __init__(self, replicas: Replicas) -> None:
        self._replicas = replicas
        # Configured like a well-behaved verifier: cache for the served max-age, refetch on an
        # unknown kid after the cooldown.
        self._keys = jwt.PyJWKClient(
            replicas.a.jwks_uri, lifespan=JWKS_MAX_AGE, cooldown_duration=REFETCH_COOLDOWN
        )
        self.outcomes: list[Outcome] = []
        super().__init__(LOAD_THREADS, LOAD_CEILING)

    def stop(self) -> list[Outcome]:
        self.join()
        return list(self.outcomes)

    def count(self, replica: str, kid: str) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.replica == replica and o.kid == kid and o.error is None)

    def errors(self) -> list[str]:
        with self._lock:
            return [f"{o.replica}: {o.error}" for o in self.outcomes if o.error is not None]

    def verified(self) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.error is None)

    def wait_for(self, kid: str, count: int = TOKENS_PER_KEY_AND_REPLICA) -> float:
        """Until both replicas have signed ``count`` verified tokens with ``kid``; the seconds."""
        return self.wait_until(
            lambda: all(self.count(name, kid) >= count for name in ("A", "B")),
            lambda: (
                f"both replicas signed {count} verified tokens with {kid} "
                f"(A: {self.count('A', kid)}, B: {self.count('B', kid)}); errors: {self.errors()[:3]}"
            ),
        )

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def _worker(self) -> None:
        auth = (CLIENT_ID, self._replicas.client_secret)
        form = {"grant_type": "client_credentials", "audience": AUDIENCE, "scope": SCOPE}
        with httpx.Client(timeout=10, trust_env=False) as http:
            while (n := self._claim()) is not None:
                name, replica = ("A", self._replicas.a) if n % 2 else ("B", self._replicas.b)
                kid = None
                try:
                    issued = http.post(replica.token_endpoint, data=form, auth=auth)
                    if issued.status_code != 200:
                        self._record(
                            Outcome(name, None, f"token HTTP {issued.status_code}: {issued.text[:200]}")
                        )
                        continue
                    token = issued.json()["access_token"]
                    kid = kid_of(token)
                    verify_with_pyjwt(token, self._keys)
                    used = http.get(
                        f"{self._replicas.resource.url}/orders", headers={"Authorization": f"Bearer {token}"}
                    )
                    if used.status_code != 200 or not isinstance(used.json(), list):
                        # RFC 6750 says why in WWW-Authenticate; it never carries the token.
                        why = used.headers.get("www-authenticate", used.text[:200])
                        self._record(Outcome(name, kid, f"resource HTTP {used.status_code}: {why}"))
                        continue
                except Exception as exc:
                    # Type and message only: PyJWT's messages name kids and claims, never the token.
                    self._record(Outcome(name, kid, f"{type(exc).__name__}: {exc}"))
                    continue
                self._record(Outcome(name, kid, None))


def _wait_until_rotation_is_safe(next_key: dict[str, Any]) -> None:
    # `s2s keys rotate` refuses to promote a next key published for less than publish_lead.
    delay = next_key["created_at"] + PUBLISH_LEAD + 0.05 - time.time()
    if delay > 0:
        time.sleep(delay)


def _one(changes: list[dict[str, Any]], frm: str | None, to: str | None) -> dict[str, Any]:
    found = [c for c in changes if c["from"] == frm and c["to"] == to]
    assert len(found) == 1, f"expected one {frm} -> {to} change in {changes}"
    return found[0]


def _served_kids(issuer: RunningIssuer) -> set[str]:
    return set(issuer.jwks_kids())


def _post_assertion(replica: RunningIssuer, assertion: str) -> httpx.Response:
    return httpx.post(replica.token_endpoint, data=_assertion_form(assertion), trust_env=False, timeout=10)


def _assertion_form(assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "audience": AUDIENCE,
        "scope": SCOPE,
        "client_id": ASSERTION_CLIENT,
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": assertion,
    }


@pytest.mark.timeout(LOAD_CEILING + 60)
def test_replicas_rotate_under_load_without_a_failed_request(replicas: Replicas) -> None:
    rotations = 10 if replicas.signer == "local" else 3
    deployment = replicas.deployment
    initial = deployment.store_keys()
    (kid0,) = [k for k, rec in initial.items() if rec["state"] == "current"]
    (next_key,) = [rec for rec in initial.values() if rec["state"] == "next"]
    assert _served_kids(replicas.a) == _served_kids(replicas.b) == set(initial)

    order = [kid0]
    created = set(initial)
    cli_seconds: list[float] = []
    converged_seconds: list[float] = []
    load = Load(replicas)
    began = time.monotonic()
    load.start()
    try:
        load.wait_for(kid0)
        for _ in range(rotations):
            _wait_until_rotation_is_safe(next_key)
            started = time.monotonic()
            out = deployment.cli_json("keys", "rotate")
            cli_seconds.append(time.monotonic() - started)
            promoted = _one(out["changes"], "next", "current")
            assert _one(out["changes"], "current", "previous")["kid"] == order[-1], out["changes"]
            assert promoted["kid"] == next_key["kid"], out["changes"]
            new_next = _one(out["changes"], None, "next")
            order.append(promoted["kid"])
            created.add(new_next["kid"])
            (next_key,) = [k for k in out["keys"] if k["kid"] == new_next["kid"]]
            converged_seconds.append(load.wait_for(promoted["kid"]))
        # More load after the last rotation has reached both replicas: counted, not timed.
        load.wait_for(order[-1], TOKENS_PER_KEY_AND_REPLICA + TOKENS_AFTER_LAST_ROTATION // 2)
    finally:
        outcomes = load.stop()
    elapsed = time.monotonic() - began

    errors = [f"{o.replica}: {o.error}" for o in outcomes if o.error is not None]
    ok = [o for o in outcomes if o.error is None]
    per_replica = Counter(o.replica for o in ok)
    per_kid = Counter(o.kid for o in ok)
    summary = (
        f"[{replicas.signer}] {len(outcomes)} requests in {elapsed:.1f}s over {rotations} rotations: "
        f"{len(ok)} tokens issued, verified by PyJWT and accepted by the resource service, "
        f"{len(errors)} failed; per replica {dict(sorted(per_replica.items()))}; "
        f"tokens per key in rotation order {[per_kid[k] for k in order]}; "
        f"`s2s keys rotate` took {min(cli_seconds):.1f}-{max(cli_seconds):.1f}s; both replicas signed "
        f"with the new key within {max(converged_seconds):.2f}s of each rotation"
    )
    print(f"\n{summary}")
    assert not errors, f"{summary}; first failures: {errors[:5]}"
    assert len(ok) == len(outcomes) > 0
    assert per_replica["A"] > 0 and per_replica["B"] > 0, summary
    assert set(per_kid) == set(order), summary  # every key that signed was one the CLI made current

    # No key lost: every kid ever seen or created is in the store, in the state the rotations imply.
    store = deployment.store_keys()
    assert created <= set(store) and len(store) == 2 + rotations, (
        f"keys lost or invented: created {sorted(created)}, store holds {sorted(store)}"
    )
    states = {kid: rec["state"] for kid, rec in store.items()}
    # A demoted key stays "previous" until every token it signed has expired, then the schedule
    # retires it: on a slow machine the early rotations are that old by the end. Retirement goes
    # oldest first, so the states in rotation order are: retired..., previous..., current.
    seen = [states[k] for k in order]
    retired = seen.count("retired")
    assert seen == ["retired"] * retired + ["previous"] * (rotations - retired) + ["current"], states
    assert states[next_key["kid"]] == "next", states
    kms_ids = {rec.get("kms_key_id") for rec in store.values()}
    if replicas.signer == "aws-kms":
        kms = deployment.boto("kms")
        assert None not in kms_ids and len(kms_ids) == len(store), store
        for key_id in kms_ids:
            assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeySpec"] == "ECC_NIST_P256"
    else:
        assert kms_ids == {None}, store
    # The shared keyset document holds public keys only when KMS signs (private JWKs otherwise).
    document = deployment.boto("secretsmanager").get_secret_value(
        SecretId=f"{deployment.prefix}/keys", VersionStage="AWSCURRENT"
    )["SecretString"]
    assert ('"d"' in document) is (replicas.signer == "local")
    # Both already sign with the last key, so both hold the last keyset: their JWKS agree with the
    # store (the ceiling only guards against a hang). The store is read again each time: the
    # replicas' schedule may retire an old key meanwhile, and then both must follow.
    deadline = time.monotonic() + CONVERGENCE_CEILING
    while True:
        published = {kid for kid, rec in deployment.store_keys().items() if rec["published"]}
        if _served_kids(replicas.a) == _served_kids(replicas.b) == published:
            break
        assert time.monotonic() < deadline, "the replicas serve different JWKS"
        time.sleep(0.05)

    # A private_key_jwt assertion is single-use across replicas: the DynamoDB state is shared.
    key = replicas.assertion_key
    assertion = key.assertion(ASSERTION_CLIENT, SHARED_TOKEN_ENDPOINT, time.time())
    first = _post_assertion(replicas.a, assertion)
    assert first.status_code == 200, first.text
    verify_with_pyjwt_client(first.json()["access_token"], replicas)
    for replica in (replicas.b, replicas.a):
        replayed = _post_assertion(replica, assertion)
        assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_client", replayed.text
        assert assertion not in replayed.text and assertion not in str(replayed.headers)
    again = _post_assertion(replicas.b, key.assertion(ASSERTION_CLIENT, SHARED_TOKEN_ENDPOINT, time.time()))
    assert again.status_code == 200, again.text  # B accepts the client; it refused only the replay
    for replica in replicas.both:
        assert assertion not in replica.log.read_text(errors="replace")


def verify_with_pyjwt_client(token: str, replicas: Replicas) -> None:
    claims = jwt.decode(
        token,
        jwt.PyJWKClient(replicas.b.jwks_uri).get_signing_key_from_jwt(token).key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        issuer=SHARED_ISSUER,
    )
    assert claims["client_id"] == ASSERTION_CLIENT, claims
