"""Federated credentials as data: validation, presets, matching rules, and storage in every
registry (file; Secrets Manager on moto in-process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import (
    Client,
    FederatedCredential,
    FederationVerifier,
    FileClientRegistry,
    InvalidAssertion,
    SecretsManagerClientRegistry,
    github_credential,
    kubernetes_credential,
    new_client,
    spiffe_credential,
)
from tests.issuer.federation_helpers import ExternalIssuer
from tests.issuer.helpers import AUDIENCE, ISSUER

K8S = "https://oidc.cluster.example"


def credentials(bundle: str = "/etc/spiffe/bundle.json") -> tuple[FederatedCredential, ...]:
    return (
        kubernetes_credential("shop/orders", issuer=K8S, audience="https://issuer.test", max_age=900),
        github_credential(
            "acme/shop:environment:prod", claims={"job_workflow_ref": "acme/ci/.github/w.yml@v1"}
        ),
        github_credential("acme/shop:ref:refs/heads/release-*", glob=True),
        spiffe_credential("spiffe://example.org/ns/shop/sa/orders", bundle),
        spiffe_credential("spiffe://example.org/ns/shop/sa/orders", "https://spire.example.org/bundle"),
        FederatedCredential(
            issuer="https://kubernetes.default.svc",
            subject="system:serviceaccount:shop:orders",
            kind="kubernetes",
            jwks_url="https://kubernetes.default.svc/openid/v1/jwks",
            ca_file="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            token_file="/var/run/secrets/kubernetes.io/serviceaccount/token",
        ),
        FederatedCredential(issuer="https://idp.example", subject="svc-1", claims={"tenant": "a"}),
    )


def federated_client(client_id: str = "fed") -> Client:
    client, secret = new_client(client_id, audiences=[AUDIENCE], federated=credentials(), now=1.0)
    assert secret is None  # no secret anywhere
    return client


# -- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: github_credential("acme/*:ref:refs/heads/main", glob=True), "ORG/REPO"),
        (lambda: github_credential("acme/shop"), "needs :ref"),
        (lambda: github_credential("acme/shop:ref:refs/heads/*"), "glob opt-in"),
        (
            lambda: github_credential("acme/shop:ref:x", glob=True, claims={"repository": "acme/*"}),
            "no wildcard in the repository",
        ),
        (lambda: kubernetes_credential("shop/*", issuer=K8S), "glob opt-in"),
        (lambda: kubernetes_credential("shop", issuer=K8S), "NAMESPACE/SERVICE_ACCOUNT"),
        (lambda: kubernetes_credential("a/b", issuer="http://cluster.example"), "https"),
        (lambda: kubernetes_credential("a/b", issuer=K8S, glob=True), "only for GitHub"),
        (lambda: kubernetes_credential("a/b", issuer=K8S, ca_file="/ca.pem"), "go with jwks_url"),
        (lambda: kubernetes_credential("a/b", issuer=K8S, claims={"aud": "x"}), "cannot be matched"),
        (lambda: kubernetes_credential("a/b", issuer=K8S, max_age=0), "max_age"),
        (lambda: spiffe_credential("spiffe://a.org/x", ""), "bundle"),
        (lambda: spiffe_credential("https://a.org/x", "/b.json"), "SPIFFE ID"),
        (
            lambda: FederatedCredential(kind="spiffe", issuer="spiffe://a.org", subject="spiffe://b.org/x"),
            "of that trust domain",
        ),
        (lambda: FederatedCredential(kind="saml", issuer=K8S, subject="x"), "kind"),
        (lambda: FederatedCredential.from_document({"issuer": K8S, "subject": "x", "secret": 1}), "unknown"),
        (lambda: Client(client_id="nothing", audiences=(AUDIENCE,)), "federated credential"),
    ],
)
def test_invalid_credentials_are_refused(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_the_glob_never_crosses_a_subject_part() -> None:
    credential = github_credential("acme/shop:ref:refs/heads/release-*", glob=True)
    ok = {"sub": "repo:acme/shop:ref:refs/heads/release-1.2", "repository": "acme/shop"}
    assert credential.mismatch(ok) is None
    crossing = {"sub": "repo:acme/shop:ref:refs/heads/release-1:environment:prod", "repository": "acme/shop"}
    assert credential.mismatch(crossing) == "github token from another branch or environment"


def test_a_repository_glob_means_its_branches_and_tags_only() -> None:
    """``--github ORG/REPO --federated-glob``: any ref, never a pull request or an environment."""
    credential = github_credential("acme/shop", glob=True)
    assert credential.subject == "repo:acme/shop:ref:*"

    def claims(rest: str) -> dict[str, str]:
        return {"sub": f"repo:acme/shop:{rest}", "repository": "acme/shop"}

    assert credential.mismatch(claims("ref:refs/heads/main")) is None
    assert credential.mismatch(claims("ref:refs/tags/v1")) is None
    other = "github token from another branch or environment"
    assert credential.mismatch(claims("pull_request")) == other
    assert credential.mismatch(claims("environment:prod")) == other
    assert credential.mismatch(claims("ref:refs/heads/x:environment:prod")) is not None


# -- the client and its storage -------------------------------------------------------------------


def test_a_federated_client_has_no_secret_and_shows_its_credentials() -> None:
    client = federated_client()
    assert client.secret_hash is None and not client.jwks
    public = client.to_public_dict()
    assert public["auth_method"] == "federated"
    assert [f["kind"] for f in public["federated"]] == [
        "kubernetes",
        "github",
        "github",
        "spiffe",
        "spiffe",
        "kubernetes",
        "oidc",
    ]
    assert Client.from_document(client.to_document()) == client


def test_file_registry_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    FileClientRegistry(path).add(federated_client())
    doc = json.loads(path.read_text())
    assert doc["clients"][0]["federated"][1]["subject"] == "repo:acme/shop:environment:prod"
    assert "secret_hash" not in doc["clients"][0]
    again = FileClientRegistry(path).get("fed")
    assert again == federated_client()
    assert again is not None and again.federated[2].glob


def test_secrets_manager_registry_round_trip(sm: Any) -> None:
    clock = FakeClock()
    SecretsManagerClientRegistry("s2s/fed", sm, clock=clock, background=False).add(federated_client())
    stored = json.loads(sm.get_secret_value(SecretId="s2s/fed", VersionStage="AWSCURRENT")["SecretString"])
    assert stored["clients"][0]["federated"][3]["jwks_file"] == "/etc/spiffe/bundle.json"
    fresh = SecretsManagerClientRegistry("s2s/fed", sm, clock=clock, background=False)
    assert fresh.get("fed") == federated_client()


def test_a_broken_credential_in_a_stored_record_is_a_config_error() -> None:
    doc = federated_client().to_document()
    doc["federated"][0]["subject"] = "system:serviceaccount:shop"
    with pytest.raises(ConfigError, match="serviceaccount"):
        Client.from_document(doc)
    doc["federated"] = {"not": "a list"}
    with pytest.raises(ConfigError, match="list"):
        Client.from_document(doc)


# -- the SPIFFE bundle: only jwt-svid keys -------------------------------------------------------------


def test_a_bundle_key_not_marked_jwt_svid_never_verifies_an_svid(tmp_path: Path) -> None:
    spiffe = ExternalIssuer("spiffe")
    svid = "spiffe://example.org/x"
    bundle = tmp_path / "bundle.json"
    # The same key, published for X.509-SVIDs only.
    bundle.write_text(json.dumps({"keys": [{**spiffe.public_jwk, "use": "x509-svid"}]}))
    client = Client(client_id="c", audiences=(AUDIENCE,), federated=(spiffe_credential(svid, str(bundle)),))
    clock = FakeClock()
    verifier = FederationVerifier(ISSUER, clock=clock)
    token = spiffe.token(svid, ISSUER, clock.now())
    with pytest.raises(Exception, match="unavailable"):
        verifier.authenticate(token, client, io=True)
    bundle.write_text(json.dumps(spiffe.jwks()))  # rewritten: read again
    assert verifier.authenticate(token, client, io=True) == client.federated[0]
    with pytest.raises(InvalidAssertion, match="too old"):
        # No iat: exp may not be further away than max_age.
        verifier.authenticate(
            spiffe.sign({"sub": svid, "aud": ISSUER, "exp": int(clock.now()) + 7200}), client, io=True
        )
