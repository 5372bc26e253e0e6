"""Federated client credentials at the token endpoint: a client with no secret, authenticated by
the token its platform gives it (Kubernetes, GitHub Actions, SPIFFE), verified against that
platform's keys served by a real HTTP server on 127.0.0.1 (or read from a file)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import (
    Client,
    FederatedCredential,
    InMemoryClientRegistry,
    IssuerSettings,
    TokenEndpoint,
    github_credential,
    kubernetes_credential,
    spiffe_credential,
)
from s2s.issuer._assertion import JWT_BEARER_ASSERTION_TYPE
from s2s.issuer._federation_verify import FILE_KEYS_GRACE
from s2s.issuer._offload import BlockingPool
from s2s.jose import generate_private_key, public_key_to_jwk, thumbprint
from s2s.keys._rotation import RotationPolicy
from s2s.litestar.issuer import create_issuer_app
from s2s.verify import InvalidAudience, SyncTokenVerifier, VerifierConfig
from s2s.verify._claims import ClaimsPolicy
from tests.issuer.federation_helpers import ExternalIssuer, external_issuer, unsigned_token
from tests.issuer.helpers import (
    AUDIENCE,
    FORM,
    ISSUER,
    SECRET,
    SECRET_HASH,
    assert_refused,
    basic,
    refusal_reason,
)
from tests.support import MemoryKeyStore
from tests.support_tls import make_local_ca

TestApp = TestClient[Litestar]

K8S_SUB = "system:serviceaccount:shop:orders"
GH_SUB = "repo:acme/shop:ref:refs/heads/main"
GH_ENV_SUB = "repo:acme/shop:environment:prod"
SVID = "spiffe://example.org/ns/shop/sa/orders"


@pytest.fixture(scope="module")
def k8s() -> Iterator[ExternalIssuer]:
    with external_issuer("kubernetes") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def gh() -> Iterator[ExternalIssuer]:
    with external_issuer("github") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def spiffe() -> Iterator[ExternalIssuer]:
    with external_issuer("spiffe") as issuer:
        yield issuer


@pytest.fixture
def registry(
    k8s: ExternalIssuer, gh: ExternalIssuer, spiffe: ExternalIssuer, tmp_path: Path
) -> InMemoryClientRegistry:
    k8s_file = tmp_path / "k8s-jwks.json"
    k8s.write_jwks(k8s_file)
    bundle_file = tmp_path / "bundle.json"
    spiffe.write_jwks(bundle_file)

    def fed(client_id: str, *credentials: Any, **options: Any) -> Client:
        return Client(client_id=client_id, audiences=(AUDIENCE,), federated=credentials, **options)

    return InMemoryClientRegistry(
        [
            fed("k8s", kubernetes_credential("shop/orders", issuer=k8s.issuer)),
            fed("k8s-file", kubernetes_credential("shop/orders", issuer=k8s.issuer, jwks_file=str(k8s_file))),
            fed("k8s-default", kubernetes_credential("shop/default", issuer=k8s.issuer)),
            fed("gh", github_credential("acme/shop:ref:refs/heads/main", issuer=gh.issuer)),
            fed("gh-env", github_credential("acme/shop:environment:prod", issuer=gh.issuer)),
            fed(
                "gh-glob",
                github_credential("acme/shop:ref:refs/heads/release-*", issuer=gh.issuer, glob=True),
            ),
            fed("svid", spiffe_credential(SVID, spiffe.jwks_url)),
            fed("svid-file", spiffe_credential(SVID, str(bundle_file))),
            # Both a secret and a credential: either authenticates it.
            fed("both", kubernetes_credential("shop/orders", issuer=k8s.issuer), secret_hash=SECRET_HASH),
            Client(client_id="svc", audiences=(AUDIENCE,), secret_hash=SECRET_HASH),
        ]
    )


def send(client: TestApp, client_id: str | None, assertion: str) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    if client_id is not None:
        form["client_id"] = client_id
    return client.post("/oauth2/token", content=urlencode(form), headers={"content-type": FORM})


def granted(client: TestApp, runtime_jwks: str, response: Any, client_id: str) -> dict[str, Any]:
    """The access token verified by the verifier, with the caller as its subject."""
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    jwks = json.loads(runtime_jwks)
    config = VerifierConfig.for_s2s(ISSUER, AUDIENCE, jwks_uri="https://issuer.test/.well-known/jwks.json")
    with SyncTokenVerifier(config, http_client=_jwks_client(jwks)) as verifier:
        principal = verifier.verify(token)
    assert principal.subject == client_id
    return principal.claims


def _jwks_client(jwks: dict[str, Any]) -> Any:
    import httpx

    return httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, json=jwks)))


def refused(client: TestApp, client_id: str, assertion: str, caplog: pytest.LogCaptureFixture) -> str:
    assert_refused(send(client, client_id, assertion), 401, "invalid_client", caplog, assertion)
    return refusal_reason(caplog)


# -- accepted, per preset ---------------------------------------------------------------------------


def test_kubernetes_token_by_oidc_discovery(client: TestApp, k8s: ExternalIssuer, clock: FakeClock) -> None:
    token = k8s.token(K8S_SUB, ISSUER, clock.now())
    response = send(client, "k8s", token)
    claims = granted(client, client.get("/.well-known/jwks.json").text, response, "k8s")
    assert claims["aud"] == AUDIENCE
    # Discovery, then the JWKS it names.
    paths = [p for p, _ in k8s.requests]
    assert "/.well-known/openid-configuration" in paths and "/openid/v1/jwks" in paths


def test_kubernetes_token_from_a_jwks_file(client: TestApp, k8s: ExternalIssuer, clock: FakeClock) -> None:
    response = send(client, "k8s-file", k8s.token(K8S_SUB, ISSUER, clock.now()))
    granted(client, client.get("/.well-known/jwks.json").text, response, "k8s-file")


def test_kubernetes_default_service_account_when_named(
    client: TestApp, k8s: ExternalIssuer, clock: FakeClock
) -> None:
    token = k8s.token("system:serviceaccount:shop:default", ISSUER, clock.now())
    assert send(client, "k8s-default", token).status_code == 200


def test_github_branch_and_environment(client: TestApp, gh: ExternalIssuer, clock: FakeClock) -> None:
    jwks = client.get("/.well-known/jwks.json").text
    granted(client, jwks, send(client, "gh", gh.token(GH_SUB, ISSUER, clock.now())), "gh")
    granted(client, jwks, send(client, "gh-env", gh.token(GH_ENV_SUB, ISSUER, clock.now())), "gh-env")


def test_github_glob_only_where_opted_in(
    client: TestApp, gh: ExternalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    release = gh.token("repo:acme/shop:ref:refs/heads/release-2.1", ISSUER, clock.now())
    assert send(client, "gh-glob", release).status_code == 200
    # The glob never crosses a ':' part, and the exact credential takes no wildcard at all.
    other = gh.token("repo:acme/shop:ref:refs/heads/main", ISSUER, clock.now())
    assert "another branch" in refused(client, "gh-glob", other, caplog)
    assert "another branch" in refused(client, "gh", release, caplog)


def test_spiffe_svid_from_the_bundle_endpoint_without_iss(
    client: TestApp, spiffe: ExternalIssuer, clock: FakeClock
) -> None:
    token = spiffe.token(SVID, ISSUER, clock.now())
    assert "iss" not in spiffe.claims(SVID, ISSUER, clock.now())
    granted(client, client.get("/.well-known/jwks.json").text, send(client, "svid", token), "svid")


def test_spiffe_svid_from_a_bundle_file(client: TestApp, spiffe: ExternalIssuer, clock: FakeClock) -> None:
    token = spiffe.token(SVID, ISSUER, clock.now())
    granted(client, client.get("/.well-known/jwks.json").text, send(client, "svid-file", token), "svid-file")


def test_an_external_token_may_be_reused_while_valid(
    client: TestApp, gh: ExternalIssuer, clock: FakeClock
) -> None:
    token = gh.token(GH_SUB, ISSUER, clock.now())
    for _ in range(3):
        assert send(client, "gh", token).status_code == 200


def test_a_client_with_a_secret_and_a_credential_accepts_both(
    client: TestApp, k8s: ExternalIssuer, clock: FakeClock
) -> None:
    assert send(client, "both", k8s.token(K8S_SUB, ISSUER, clock.now())).status_code == 200
    response = client.post(
        "/oauth2/token",
        content="grant_type=client_credentials",
        headers={"content-type": FORM, "authorization": basic("both", SECRET)},
    )
    assert response.status_code == 200


def test_kubernetes_api_server_jwks_with_ca_and_bearer_token(clock: FakeClock, tmp_path: Path) -> None:
    """In-cluster: the API server's /openid/v1/jwks over https (its CA) with the pod's own token."""
    ca = make_local_ca(tmp_path)
    with external_issuer("kubernetes", tls=ca.server_context()) as api:
        token_file = tmp_path / "token"
        token_file.write_text("pod-own-sa-token\n")
        credential = kubernetes_credential(
            "shop/orders",
            issuer=api.issuer,
            jwks_url=api.jwks_url,
            ca_file=str(ca.ca_path),
            token_file=str(token_file),
        )
        registry = InMemoryClientRegistry(
            [Client(client_id="k8s", audiences=(AUDIENCE,), federated=(credential,))]
        )
        app = issuer_app(registry, clock, token_dirs=(str(tmp_path),))
        with TestClient(app, base_url=ISSUER) as tc:
            assert send(tc, "k8s", api.token(K8S_SUB, ISSUER, clock.now())).status_code == 200
        assert api.requests == [("/openid/v1/jwks", "Bearer pod-own-sa-token")]


def test_a_token_file_outside_the_allowed_directories_is_never_sent(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever writes the registry must not make the issuer send any local file as a bearer
    token: token_file only under S2S_FEDERATION_TOKEN_DIRS (default: the pod's own account)."""
    caplog.set_level(logging.INFO)
    secret = tmp_path / "secret"
    secret.write_text("a-local-secret-the-issuer-can-read\n")
    allowed = tmp_path / "serviceaccount"
    allowed.mkdir()
    # A symbolic link inside the allowed directory to a file outside: still outside.
    (allowed / "token").symlink_to(secret)
    with external_issuer("kubernetes") as api:
        for token_file in (secret, allowed / "token", allowed / ".." / "secret"):
            credential = kubernetes_credential(
                "shop/orders", issuer=api.issuer, jwks_url=api.jwks_url, token_file=str(token_file)
            )
            app = issuer_app(one_client(credential), clock, token_dirs=(str(allowed),))
            with TestClient(app, base_url=ISSUER) as tc:
                response = send(tc, "k8s", api.token(K8S_SUB, ISSUER, clock.now()))
            assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
        assert api.requests == []
    assert "not under the allowed token directories" in caplog.text
    assert "a-local-secret" not in caplog.text


def test_the_token_directories_setting() -> None:
    assert IssuerSettings().federation_token_dirs == ("/var/run/secrets/kubernetes.io/serviceaccount",)
    env = {"S2S_FEDERATION_TOKEN_DIRS": "/run/a, /run/b"}
    assert IssuerSettings.from_env(environ=env).federation_token_dirs == ("/run/a", "/run/b")
    with pytest.raises(ConfigError, match="S2S_FEDERATION_TOKEN_DIRS"):
        IssuerSettings.from_env(environ={"S2S_FEDERATION_TOKEN_DIRS": "relative/dir"})


# -- refused, each with its own reason in the log ------------------------------------------------------


def test_every_refusal_is_invalid_client_with_a_distinct_reason(
    client: TestApp,
    k8s: ExternalIssuer,
    gh: ExternalIssuer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = clock.now()
    stranger_key = generate_private_key("RS256")
    with (
        external_issuer("kubernetes") as other_cluster,
        external_issuer("spiffe", trust_domain="evil.org") as evil,
    ):
        ours = client.post(
            "/oauth2/token",
            content="grant_type=client_credentials",
            headers={"content-type": FORM, "authorization": basic("svc", SECRET)},
        ).json()["access_token"]
        header = {"alg": "HS256", "kid": k8s.kid, "typ": "JWT"}
        hs256 = unsigned_token(header, k8s.claims(K8S_SUB, ISSUER, now), b"\x00" * 32)
        cases: dict[str, tuple[str, str]] = {
            "wrong subject": ("k8s", k8s.token("system:serviceaccount:shop:billing", ISSUER, now)),
            "wrong audience": ("k8s", k8s.token(K8S_SUB, "https://someone-else.example", now)),
            "untrusted issuer": ("k8s", other_cluster.token(K8S_SUB, ISSUER, now)),
            "default service account": ("k8s", k8s.token("system:serviceaccount:shop:default", ISSUER, now)),
            "too old": ("k8s", k8s.token(K8S_SUB, ISSUER, now, iat=int(now) - 7200, exp=int(now) + 3600)),
            "expired": ("k8s", k8s.token(K8S_SUB, ISSUER, now, exp=int(now) - 120)),
            "unknown key": (
                "k8s",
                k8s.sign(k8s.claims(K8S_SUB, ISSUER, now), {"kid": "not-published"}, stranger_key),
            ),
            "algorithm": (
                "k8s",
                unsigned_token({"alg": "none", "kid": k8s.kid}, k8s.claims(K8S_SUB, ISSUER, now)),
            ),
            "algorithm HS256": ("k8s", hs256),
            "our own access token": ("k8s", ours),
            "another repository": ("gh", gh.token("repo:evil/shop:ref:refs/heads/main", ISSUER, now)),
            "another branch": ("gh", gh.token("repo:acme/shop:ref:refs/heads/dev", ISSUER, now)),
            "another trust domain": ("svid", evil.token("spiffe://evil.org/ns/shop/sa/orders", ISSUER, now)),
            "bad signature": ("k8s", k8s.sign(k8s.claims(K8S_SUB, ISSUER, now), key=stranger_key)),
        }
        seen: dict[str, str] = {}
        for expected, (client_id, token) in cases.items():
            reason = refused(client, client_id, token, caplog)
            assert expected.split(" HS256")[0] in reason, (expected, reason)
            assert token not in reason
            seen[expected] = reason.rsplit(": ", 1)[-1]
            clock.advance(2)  # the failure budget of (client id, address) refills: 0.5 per second
    distinct = {k: v for k, v in seen.items() if k != "algorithm HS256"}
    assert len(set(distinct.values())) == len(distinct), seen
    assert seen["algorithm HS256"] == seen["algorithm"]


def test_a_kubernetes_token_without_its_claim_is_refused(
    client: TestApp, k8s: ExternalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    claims = k8s.claims(K8S_SUB, ISSUER, clock.now())
    claims.pop("kubernetes.io")
    assert "kubernetes.io" in refused(client, "k8s", k8s.sign(claims), caplog)
    claims = k8s.claims(K8S_SUB, ISSUER, clock.now())
    claims["kubernetes.io"]["namespace"] = "other"
    assert "another namespace" in refused(client, "k8s", k8s.sign(claims), caplog)


def test_at_jwt_typ_is_our_own_kind_of_token(
    client: TestApp, k8s: ExternalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    token = k8s.sign(k8s.claims(K8S_SUB, ISSUER, clock.now()), {"typ": "at+jwt"})
    assert "our own access token" in refused(client, "k8s", token, caplog)


def test_a_token_of_one_client_does_not_authenticate_another(
    client: TestApp,
    gh: ExternalIssuer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A valid GitHub token for "gh", presented as the Kubernetes client, and as a secret client.
    token = gh.token(GH_SUB, ISSUER, clock.now())
    assert "untrusted issuer" in refused(client, "k8s", token, caplog)
    assert "does not match the assertion issuer" in refused(client, "svc", token, caplog)
    assert "does not match the assertion issuer" in refused(client, "nobody", token, caplog)


def test_external_keys_unavailable_is_503_not_invalid_client(clock: FakeClock) -> None:
    with external_issuer("kubernetes") as gone:
        credential = kubernetes_credential("shop/orders", issuer=gone.issuer)
        token = gone.token(K8S_SUB, ISSUER, clock.now())
    registry = InMemoryClientRegistry(
        [Client(client_id="k8s", audiences=(AUDIENCE,), federated=(credential,))]
    )
    with TestClient(issuer_app(registry, clock), base_url=ISSUER) as tc:
        response = send(tc, "k8s", token)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert token not in response.text


def test_unavailable_keys_cost_the_failure_budget_and_log_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream of unproven tokens while the keys are down ends in slow_down, not in unlimited
    503s, and the outage is logged once per key source, not once per request."""
    caplog.set_level(logging.INFO)
    with external_issuer("kubernetes") as gone:
        credential = kubernetes_credential("shop/orders", issuer=gone.issuer)
        forged = gone.sign(gone.claims(K8S_SUB, ISSUER, clock.now()), key=generate_private_key("RS256"))
    with TestClient(issuer_app(one_client(credential), clock), base_url=ISSUER) as tc:
        answers = [send(tc, "k8s", forged) for _ in range(200)]
    statuses = [a.status_code for a in answers]
    assert statuses[0] == 503 and answers[0].json()["error"] == "temporarily_unavailable"
    first = statuses.index(429)
    assert 1 < first <= 11 and set(statuses[first:]) == {429}, statuses
    assert answers[-1].json()["error"] == "slow_down"
    outage = [
        r
        for r in caplog.records
        if "no usable keys" in r.getMessage() or "cannot use the keys" in r.getMessage()
    ]
    assert 1 <= len(outage) <= 2
    assert all(forged not in a.text for a in answers) and forged not in caplog.text


# -- no network I/O on the event loop -------------------------------------------------------------


def k8s_client_app(
    k8s: ExternalIssuer, clock: FakeClock, settings: IssuerSettings, store: MemoryKeyStore
) -> Litestar:
    """An issuer app whose one client, ``k8s``, is the Kubernetes service account shop/orders."""
    credential = kubernetes_credential("shop/orders", issuer=k8s.issuer)
    registry = InMemoryClientRegistry(
        [Client(client_id="k8s", audiences=(AUDIENCE,), federated=(credential,))]
    )
    return create_issuer_app(settings, store=store, registry=registry, clock=clock, reload_loop=False)


def test_a_key_fetch_runs_off_the_event_loop_then_the_fresh_key_does_not(
    k8s: ExternalIssuer, clock: FakeClock, settings: IssuerSettings, store: MemoryKeyStore
) -> None:
    app = k8s_client_app(k8s, clock, settings, store)
    endpoint: TokenEndpoint = app.state.s2s_issuer.endpoint
    endpoint.keys.refresh()
    offloaded: list[str] = []

    async def run_sync(fn: Callable[[], bool]) -> bool:
        offloaded.append("worker")
        return await asyncio.to_thread(fn)

    def request() -> int:
        form = {
            "grant_type": "client_credentials",
            "client_id": "k8s",
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": k8s.token(K8S_SUB, ISSUER, clock.now()),
        }
        out = asyncio.run(endpoint.process(urlencode(form).encode(), FORM, None, run_sync))
        return out.status

    assert request() == 200 and offloaded == ["worker"]
    assert request() == 200 and offloaded == ["worker"]  # the key is fresh: no thread, no I/O


def test_failures_are_charged_to_the_failure_budget(
    k8s: ExternalIssuer, clock: FakeClock, store: MemoryKeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = IssuerSettings(issuer=ISSUER, rotation=RotationPolicy())
    credential = kubernetes_credential("shop/orders", issuer=k8s.issuer)
    registry = InMemoryClientRegistry(
        [Client(client_id="k8s", audiences=(AUDIENCE,), federated=(credential,))]
    )
    app = create_issuer_app(settings, store=store, registry=registry, clock=clock, reload_loop=False)
    wrong = k8s.token("system:serviceaccount:shop:billing", ISSUER, clock.now())
    with TestClient(app, base_url=ISSUER) as tc:
        answers = [send(tc, "k8s", wrong).json()["error"] for _ in range(12)]
    assert answers[0] == "invalid_client" and "slow_down" in answers


def issuer_app(
    registry: InMemoryClientRegistry, clock: FakeClock, token_dirs: tuple[str, ...] | None = None
) -> Litestar:
    settings = IssuerSettings(issuer=ISSUER, rotation=RotationPolicy(), rate_limit=1000, rate_burst=1000)
    if token_dirs is not None:
        settings = dataclasses.replace(settings, federation_token_dirs=token_dirs)
    return create_issuer_app(
        settings, store=MemoryKeyStore(), registry=registry, clock=clock, reload_loop=False
    )


def test_in_the_issuers_pool_the_key_fetch_happens_in_the_worker(
    k8s: ExternalIssuer, clock: FakeClock, settings: IssuerSettings, store: MemoryKeyStore
) -> None:
    """An issuer whose dependencies block (AWS) runs each request in its pool: federation too."""
    registry = one_client(kubernetes_credential("shop/orders", issuer=k8s.issuer))
    app = create_issuer_app(settings, store=store, registry=registry, clock=clock, reload_loop=False)
    endpoint: TokenEndpoint = app.state.s2s_issuer.endpoint
    endpoint.keys.refresh()
    pool = BlockingPool(workers=2, deadline=30)
    endpoint.offload = pool

    async def no_thread(fn: Callable[[], bool]) -> bool:
        raise AssertionError("the pool runs the whole request: no second hop")

    form = {
        "grant_type": "client_credentials",
        "client_id": "k8s",
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": k8s.token(K8S_SUB, ISSUER, clock.now()),
    }
    try:
        out = asyncio.run(endpoint.process(urlencode(form).encode(), FORM, None, no_thread))
    finally:
        pool.close()
    assert out.status == 200, out.body


def one_client(credential: Any) -> InMemoryClientRegistry:
    return InMemoryClientRegistry([Client(client_id="k8s", audiences=(AUDIENCE,), federated=(credential,))])


def test_strangers_cannot_make_the_issuer_fetch_keys(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A token of an issuer no credential names costs no fetch; a stream of unknown kids costs
    one refetch per cooldown (the verifier's JWKS source), not one per request."""
    caplog.set_level(logging.INFO)
    with external_issuer("kubernetes") as k8s, external_issuer("kubernetes") as other:
        registry = one_client(kubernetes_credential("shop/orders", issuer=k8s.issuer, jwks_url=k8s.jwks_url))
        stranger = generate_private_key("RS256")
        with TestClient(issuer_app(registry, clock), base_url=ISSUER) as tc:
            assert send(tc, "k8s", k8s.token(K8S_SUB, ISSUER, clock.now())).status_code == 200
            fetched = len(k8s.requests)
            for n in range(6):
                forged = k8s.sign(k8s.claims(K8S_SUB, ISSUER, clock.now()), {"kid": f"random-{n}"}, stranger)
                assert send(tc, "k8s", forged).status_code == 401
                assert send(tc, "k8s", other.token(K8S_SUB, ISSUER, clock.now())).status_code == 401
                clock.advance(2)  # within the 30 s refetch cooldown, but the failure budget refills
            assert len(k8s.requests) - fetched <= 1
            assert other.requests == []
            assert "unknown key" in refusal_reason(caplog) or "untrusted issuer" in refusal_reason(caplog)


def test_a_key_source_that_cannot_be_set_up_is_503_with_the_reason_logged(
    k8s: ExternalIssuer, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    credential = kubernetes_credential(
        "shop/orders", issuer=k8s.issuer, jwks_url=k8s.jwks_url, ca_file=str(tmp_path / "missing-ca.crt")
    )
    with TestClient(issuer_app(one_client(credential), clock), base_url=ISSUER) as tc:
        token = k8s.token(K8S_SUB, ISSUER, clock.now())
        response = send(tc, "k8s", token)
    assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
    assert any("cannot use the keys of" in r.getMessage() for r in caplog.records)
    assert token not in caplog.text


@pytest.mark.parametrize(
    "case",
    [
        (lambda path: path.write_text("{not json"), "not a usable JWKS"),
        (lambda path: path.unlink(), "is not readable"),
    ],
    ids=["broken", "deleted"],
)
def test_a_broken_or_deleted_jwks_file_keeps_its_keys_only_for_the_grace(
    k8s: ExternalIssuer,
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: tuple[Callable[[Path], object], str],
) -> None:
    """Room for a writer that is not atomic, then fail closed: removing the file revokes it."""
    damage, warning = case
    caplog.set_level(logging.INFO)
    path = tmp_path / "jwks.json"
    k8s.write_jwks(path)
    credential = kubernetes_credential("shop/orders", issuer=k8s.issuer, jwks_file=str(path))
    with TestClient(issuer_app(one_client(credential), clock), base_url=ISSUER) as tc:
        assert send(tc, "k8s", k8s.token(K8S_SUB, ISSUER, clock.now())).status_code == 200
        damage(path)
        clock.advance(FILE_KEYS_GRACE / 2)  # still the last keys
        for _ in range(3):
            assert send(tc, "k8s", k8s.token(K8S_SUB, ISSUER, clock.now())).status_code == 200
        clock.advance(FILE_KEYS_GRACE)
        token = k8s.token(K8S_SUB, ISSUER, clock.now())
        answers = [send(tc, "k8s", token) for _ in range(3)]
    assert all(a.status_code == 503 for a in answers), answers[0].text
    assert answers[0].json()["error"] == "temporarily_unavailable" and token not in answers[0].text
    assert len([r for r in caplog.records if warning in r.getMessage()]) == 1  # not one per request
    assert any("its keys are revoked" in r.getMessage() for r in caplog.records)
    assert token not in caplog.text


def _ec_jwks(key: Any) -> tuple[str, str]:
    public = public_key_to_jwk(key.public_key())
    kid = thumbprint(public)
    return kid, json.dumps({"keys": [{**public, "kid": kid, "alg": "ES256", "use": "sig"}]})


def test_a_same_size_swap_keeping_the_mtime_is_read_again(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """EC P-256 JWKS all have one length; cp -p and rsync -a keep the mtime: still a new file."""
    caplog.set_level(logging.INFO)
    with external_issuer("kubernetes", alg="ES256") as ext:
        old_kid, old_doc = _ec_jwks(ext.key)
        new_key = generate_private_key("ES256")
        new_kid, new_doc = _ec_jwks(new_key)
        assert len(old_doc) == len(new_doc)
        path = tmp_path / "jwks.json"
        path.write_text(old_doc)
        credential = kubernetes_credential("shop/orders", issuer=ext.issuer, jwks_file=str(path))
        with TestClient(issuer_app(one_client(credential), clock), base_url=ISSUER) as tc:
            old = ext.sign(ext.claims(K8S_SUB, ISSUER, clock.now()), {"kid": old_kid})
            assert send(tc, "k8s", old).status_code == 200
            before = path.stat()
            path.write_text(new_doc)
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            after = path.stat()
            assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
            new = ext.sign(ext.claims(K8S_SUB, ISSUER, clock.now()), {"kid": new_kid}, new_key)
            assert send(tc, "k8s", new).status_code == 200
            assert "unknown key" in refused(tc, "k8s", old, caplog)


def test_a_generic_oidc_credential_matches_subject_and_claims_exactly(
    gh: ExternalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    credential = FederatedCredential(
        issuer=gh.issuer,
        subject="svc-batch",
        audience="api://s2s",
        claims={"azp": "batch-runner"},
        jwks_url=gh.jwks_url,
    )
    with TestClient(issuer_app(one_client(credential), clock), base_url=ISSUER) as tc:
        now = clock.now()
        good = gh.token("svc-batch", "api://s2s", now, azp="batch-runner")
        assert send(tc, "k8s", good).status_code == 200
        other = gh.token("svc-batch", "api://s2s", now, azp="someone-else")
        assert "claim azp does not match" in refused(tc, "k8s", other, caplog)
        clock.advance(2)
        # The credential's audience, not the issuer's identifier, is the one required here.
        ours = gh.token("svc-batch", ISSUER, now, azp="batch-runner")
        assert "wrong audience" in refused(tc, "k8s", ours, caplog)


def test_an_external_token_for_several_audiences_is_refused(
    client: TestApp,
    k8s: ExternalIssuer,
    gh: ExternalIssuer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A platform token minted for this issuer *and* another service is a token that service can
    replay here: only the pinned audience, alone (a string or a one-element list), is accepted."""
    now = clock.now()
    several = k8s.sign(k8s.claims(K8S_SUB, ISSUER, now) | {"aud": [ISSUER, "https://other.example"]})
    assert "several audiences" in refused(client, "k8s", several, caplog)
    alone = k8s.sign(k8s.claims(K8S_SUB, ISSUER, now) | {"aud": [ISSUER]})
    assert send(client, "k8s", alone).status_code == 200
    gh_several = gh.sign(gh.claims(GH_SUB, ISSUER, now) | {"aud": ["https://other.example", ISSUER]})
    assert "wrong audience" in refused(client, "gh", gh_several, caplog)
    assert send(client, "gh", gh.token(GH_SUB, ISSUER, now)).status_code == 200


def test_the_verifier_still_accepts_several_audiences_in_access_tokens() -> None:
    """The single-audience rule is federation's: a resource server keeps the RFC 7519 rule."""
    config = VerifierConfig.for_s2s(ISSUER, AUDIENCE, jwks_uri="https://issuer.test/.well-known/jwks.json")
    now = 1_700_000_000
    claims = {"iss": ISSUER, "sub": "svc", "aud": [AUDIENCE, "https://other"], "exp": now + 60, "iat": now}
    assert ClaimsPolicy(config).check(claims, now) > now
    with pytest.raises(InvalidAudience, match="several audiences"):
        ClaimsPolicy(config, single_audience=True).check(claims, now)


def test_the_apps_shutdown_closes_the_federated_key_sources(
    k8s: ExternalIssuer, clock: FakeClock, settings: IssuerSettings, store: MemoryKeyStore
) -> None:
    """The HTTP clients the issuer opened to fetch external keys end with the app, not the process."""
    app = k8s_client_app(k8s, clock, settings, store)
    endpoint: TokenEndpoint = app.state.s2s_issuer.endpoint
    form = {
        "grant_type": "client_credentials",
        "client_id": "k8s",
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": k8s.token(K8S_SUB, ISSUER, clock.now()),
    }
    with TestClient(app) as client:
        answer = client.post("/oauth2/token", content=urlencode(form), headers={"Content-Type": FORM})
        assert answer.status_code == 200, answer.text
        opened = list(endpoint.federation._clients)
        assert opened and not any(c.is_closed for c in opened)
    assert all(c.is_closed for c in opened)
