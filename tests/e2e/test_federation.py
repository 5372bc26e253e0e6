"""End to end, no secret anywhere: a real ``s2s serve`` trusting three external issuers run by the
test (a Kubernetes-shaped OIDC issuer, a GitHub-Actions-shaped one, a SPIFFE bundle endpoint, each
a real HTTP server on 127.0.0.1), clients registered by the real ``s2s clients add`` with presets,
callers that hold only their platform's token, and every issued token verified by the s2s plugin
in a Litestar app."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from s2s.litestar import PrincipalDep, S2SAuthPlugin
from s2s.oauth import JWT_BEARER_ASSERTION_TYPE
from s2s.verify import VerifierConfig
from tests.client.assertion_support import write_atomically
from tests.e2e.conftest import S2SCli
from tests.issuer.federation_helpers import ExternalIssuer, external_issuer
from tests.support import RunningIssuer, running_issuer

AUDIENCE = "https://orders.e2e.internal"
K8S_SUB = "system:serviceaccount:shop:orders"
GH_SUB = "repo:acme/shop:ref:refs/heads/main"
SVID = "spiffe://example.org/ns/shop/sa/orders"


@dataclass
class Platforms:
    k8s: ExternalIssuer
    gh: ExternalIssuer
    spiffe: ExternalIssuer


@pytest.fixture(scope="module")
def platforms() -> Iterator[Platforms]:
    with (
        external_issuer("kubernetes") as k8s,
        external_issuer("github") as gh,
        external_issuer("spiffe") as spiffe,
    ):
        yield Platforms(k8s, gh, spiffe)


@pytest.fixture(scope="module")
def issuer(platforms: Platforms, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    root = tmp_path_factory.mktemp("federation")
    keys = root / "keys"
    env = {
        **os.environ,
        "S2S_KEYSTORE": f"file://{keys}",
        "S2S_CLIENTS": f"file://{keys / 'clients.json'}",
    }
    for name in ("S2S_ALG", "S2S_ISSUER", "S2S_DEBUG", "S2S_CLIENT_SECRET"):
        env.pop(name, None)

    deployment = S2SCli(root, env)

    def cli(*args: str) -> str:
        done = deployment.cli(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("keys", "init")
    p = platforms
    common = ("--audience", AUDIENCE, "--scope", "orders:read")
    registered = [
        cli("clients", "add", "orders-k8s", *common, "--kubernetes", "shop/orders",
            "--kubernetes-issuer", p.k8s.url),
        cli("clients", "add", "orders-ci", *common, "--github", "acme/shop:ref:refs/heads/main",
            "--github-issuer", p.gh.url),
        cli("clients", "add", "orders-svid", *common, "--spiffe", SVID, "--spiffe-bundle", p.spiffe.jwks_url),
    ]  # fmt: skip
    for out in registered:
        assert "client_secret" not in out and "(federated)" in out
    assert "secret_hash" not in (keys / "clients.json").read_text()
    # The issuer identifier follows the port (S2S_ISSUER unset): the platforms' tokens name it.
    with running_issuer(env, root) as running:
        yield running


@pytest.fixture(scope="module")
def resource(issuer: RunningIssuer) -> Iterator[TestClient[Litestar]]:
    """A resource service: a Litestar app with the s2s plugin, trusting the running issuer."""

    @get("/orders")
    async def orders(principal: PrincipalDep) -> dict[str, Any]:
        return {"client_id": principal.client_id, "scopes": sorted(principal.scopes)}

    plugin = S2SAuthPlugin(VerifierConfig.for_s2s(issuer.url, AUDIENCE))
    app = Litestar(route_handlers=[orders], plugins=[plugin], logging_config=None)
    with TestClient(app) as client:
        yield client


def exchange(issuer: RunningIssuer, client_id: str, platform_token: str) -> httpx.Response:
    """The caller's only credential is its platform's token (RFC 7523 client authentication)."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": platform_token,
    }
    return httpx.post(issuer.token_endpoint, data=form, timeout=30, trust_env=False)


@pytest.mark.parametrize(
    ("client_id", "platform", "subject"),
    [("orders-k8s", "k8s", K8S_SUB), ("orders-ci", "gh", GH_SUB), ("orders-svid", "spiffe", SVID)],
)
def test_a_caller_without_a_secret_gets_a_token_the_plugin_accepts(  # noqa: PLR0917 - fixtures
    issuer: RunningIssuer,
    resource: TestClient[Litestar],
    platforms: Platforms,
    client_id: str,
    platform: str,
    subject: str,
) -> None:
    external: ExternalIssuer = getattr(platforms, platform)

    # The platforms mint with the wall clock, as real ones do.
    platform_token = external.token(subject, issuer.url, time.time())
    response = exchange(issuer, client_id, platform_token)
    assert response.status_code == 200, response.text
    access_token = response.json()["access_token"]
    # Twice: platform tokens are reused by design (the kubelet, GitHub), bounded by age and exp.
    assert exchange(issuer, client_id, platform_token).status_code == 200
    answer = resource.get("/orders", headers={"Authorization": f"Bearer {access_token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"client_id": client_id, "scopes": ["orders:read"]}
    # The issuer fetched that platform's keys itself (discovery + JWKS, or the bundle).
    assert any(path == external.jwks_path for path, _ in external.requests)


def test_refusals_end_to_end_are_invalid_client_and_leak_nothing(
    issuer: RunningIssuer, platforms: Platforms
) -> None:

    now = time.time()
    cases = {
        "github token from another repository": (
            "orders-ci",
            platforms.gh.token("repo:evil/shop:ref:refs/heads/main", issuer.url, now),
        ),
        "kubernetes default service account": (
            "orders-k8s",
            platforms.k8s.token("system:serviceaccount:shop:default", issuer.url, now),
        ),
        "wrong audience": ("orders-svid", platforms.spiffe.token(SVID, "https://elsewhere.example", now)),
    }
    for reason, (client_id, token) in cases.items():
        response = exchange(issuer, client_id, token)
        assert response.status_code == 401 and response.json()["error"] == "invalid_client", response.text
        assert token not in response.text
        log = Path(issuer.log).read_text(errors="replace")
        assert reason in log, log[-2000:]
        assert token not in log
    # The access token of a valid caller, presented as an assertion, is refused too.
    k8s_token = platforms.k8s.token(K8S_SUB, issuer.url, now)
    valid = exchange(issuer, "orders-k8s", k8s_token).json()["access_token"]
    response = exchange(issuer, "orders-k8s", valid)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert "our own access token" in Path(issuer.log).read_text(errors="replace")


def test_a_token_client_reads_a_projected_token_file_rewritten_under_load(
    issuer: RunningIssuer,
    resource: TestClient[Litestar],
    platforms: Platforms,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller's whole configuration is S2S_CLIENT_ASSERTION_FILE: no secret anywhere. The file
    is rewritten (as the kubelet rotates it) while the client keeps acquiring: no acquisition fails."""
    from s2s.client import TokenClient

    projected = tmp_path / "token"
    write_atomically(projected, platforms.k8s.token(K8S_SUB, issuer.url, time.time()))
    for name in ("S2S_CLIENT_SECRET", "S2S_CLIENT_PRIVATE_KEY", "S2S_TOKEN_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("S2S_ISSUER", issuer.url)
    monkeypatch.setenv("S2S_CLIENT_ID", "orders-k8s")
    monkeypatch.setenv("S2S_CLIENT_ASSERTION_FILE", str(projected))

    rewrites, stop = [0], threading.Event()

    def kubelet() -> None:
        while not stop.wait(1.0):
            write_atomically(projected, platforms.k8s.token(K8S_SUB, issuer.url, time.time()))
            rewrites[0] += 1

    writer = threading.Thread(target=kubelet, daemon=True)
    writer.start()
    acquired, failures = 0, []
    ceiling = time.monotonic() + 120  # a generous bound; the loop ends on the work done
    try:
        with TokenClient.from_env() as client:
            while (rewrites[0] < 3 or acquired < 20) and time.monotonic() < ceiling:
                client.clear()  # every acquisition goes to the issuer with the file's current token
                try:
                    token = client.get_token(AUDIENCE, ["orders:read"])
                except Exception as exc:
                    failures.append(repr(exc))
                    continue
                acquired += 1
        answer = resource.get("/orders", headers={"Authorization": f"Bearer {token.token}"})
    finally:
        stop.set()
        writer.join()
    print(f"\nprojected-token e2e: {acquired} acquisitions, {rewrites[0]} rewrites, {len(failures)} failures")
    assert failures == []
    assert rewrites[0] >= 3 and acquired >= 20
    assert answer.status_code == 200 and answer.json()["client_id"] == "orders-k8s"


def test_s2s_token_with_an_assertion_file_against_the_issuer(
    issuer: RunningIssuer, platforms: Platforms, tmp_path: Path
) -> None:
    projected = tmp_path / "token"
    platform_token = platforms.gh.token(GH_SUB, issuer.url, time.time())
    write_atomically(projected, platform_token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("s2s")), "token", "--issuer", issuer.url,
         "--client-id", "orders-ci", "--assertion-file", str(projected), "--audience", AUDIENCE],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().count(".") == 2  # a compact JWT
    assert platform_token not in done.stdout + done.stderr
