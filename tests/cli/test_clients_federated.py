"""``s2s clients add`` with federated credentials (generic and presets) and ``s2s clients list``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from s2s.cli import main
from s2s.issuer import FileClientRegistry

AUD = "https://orders.internal"
K8S = "https://oidc.cluster.example"
SVID = "spiffe://example.org/ns/shop/sa/orders"
BUNDLE = "https://spire.example.org/bundle"


@pytest.fixture
def registry_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "clients.json"
    monkeypatch.setenv("S2S_CLIENTS", f"file://{path}")
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def add(client_id: str, *options: str) -> dict[str, Any]:
    code, out, err = run("clients", "add", client_id, "--audience", AUD, "--json", *options)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def test_presets_register_clients_without_any_secret(registry_path: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    k8s = add("k8s", "--kubernetes", "shop/orders", "--kubernetes-issuer", K8S)
    gh = add("gh", "--github", "acme/shop:ref:refs/heads/main")
    env = add("gh-env", "--github", "acme/shop:environment:prod", "--federated-audience", "api://s2s")
    svid = add("svid", "--spiffe", "spiffe://example.org/ns/shop/sa/orders", "--spiffe-bundle", str(bundle))
    for data in (k8s, gh, env, svid):
        assert "client_secret" not in data and data["auth_method"] == "federated"
    assert k8s["federated"] == [
        {
            "kind": "kubernetes",
            "issuer": K8S,
            "subject": "system:serviceaccount:shop:orders",
            "max_age": 3600.0,
        }
    ]
    assert gh["federated"][0]["issuer"] == "https://token.actions.githubusercontent.com"
    assert gh["federated"][0]["subject"] == "repo:acme/shop:ref:refs/heads/main"
    assert gh["federated"][0]["claims"] == {"repository": "acme/shop"}
    assert env["federated"][0]["audience"] == "api://s2s"
    assert svid["federated"][0] | {"max_age": 0} == {
        "kind": "spiffe",
        "issuer": "spiffe://example.org",
        "subject": "spiffe://example.org/ns/shop/sa/orders",
        "jwks_file": str(bundle),
        "max_age": 0,
    }
    stored = registry_path.read_text()
    assert "secret_hash" not in stored
    assert [c.client_id for c in FileClientRegistry(registry_path).all()] == ["gh", "gh-env", "k8s", "svid"]


def test_generic_credential_with_claims_and_the_api_server_jwks(registry_path: Path) -> None:
    data = add(
        "ci",
        "--federated-issuer", "https://kubernetes.default.svc",
        "--federated-subject", "system:serviceaccount:ci:runner",
        "--federated-claim", "azp=ci-runner",
        "--federated-jwks-url", "https://kubernetes.default.svc/openid/v1/jwks",
        "--federated-ca-file", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        "--federated-token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "--federated-max-age", "600",
    )  # fmt: skip
    (credential,) = data["federated"]
    assert credential["kind"] == "oidc" and credential["claims"] == {"azp": "ci-runner"}
    assert credential["max_age"] == 600.0 and credential["token_file"].endswith("/token")


def test_github_glob_is_an_explicit_opt_in(registry_path: Path) -> None:
    code, _, err = run("clients", "add", "gh", "--audience", AUD, "--github", "acme/shop")
    assert code == 1 and err.startswith("s2s: error:") and err.count("\n") == 1 and "--federated-glob" in err
    assert "pull requests" in err
    data = add("gh", "--github", "acme/shop", "--federated-glob")
    assert data["federated"][0]["subject"] == "repo:acme/shop:ref:*" and data["federated"][0]["glob"] is True


def test_github_repository_and_owner_ids_pin_the_repository_against_repo_jacking(
    registry_path: Path,
) -> None:
    """A deleted and re-created ORG/REPO has the same name, never the same numeric ids."""
    data = add(
        "gh", "--github", "acme/shop:ref:refs/heads/main",
        "--github-repository-id", "123456", "--github-owner-id", "7890",
    )  # fmt: skip
    claims = data["federated"][0]["claims"]
    assert claims == {"repository": "acme/shop", "repository_id": "123456", "repository_owner_id": "7890"}
    credential = FileClientRegistry(registry_path).get("gh").federated[0]  # type: ignore[union-attr]
    same = {"sub": "repo:acme/shop:ref:refs/heads/main", "repository": "acme/shop"}
    assert credential.mismatch(same | {"repository_id": "123456", "repository_owner_id": "7890"}) is None
    jacked = same | {"repository_id": "999999", "repository_owner_id": "7890"}
    assert credential.mismatch(jacked) == "github token from another repository"
    new_owner = same | {"repository_id": "123456", "repository_owner_id": "1"}
    assert credential.mismatch(new_owner) == "github token from another repository"
    for options, message in [
        (("--kubernetes", "shop/orders", "--github-owner-id", "1"), "goes with --github"),
        (("--github", "acme/shop:ref:refs/heads/main", "--github-repository-id", "12a"), "numeric"),
    ]:
        code, _, err = run("clients", "add", "x", "--audience", AUD, *options)
        assert code == 1 and err.startswith("s2s: error:") and message in err, err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--kubernetes", "shop/orders", "--github", "a/b:ref:refs/heads/main"), "one federated credential"),
        (("--kubernetes", "shop"), "NAMESPACE/SERVICE_ACCOUNT"),
        (("--spiffe", "spiffe://example.org/x"), "--spiffe-bundle"),
        (("--federated-subject", "x"), "need --federated-issuer"),
        (("--federated-glob",), "need --federated-issuer"),
        (("--federated-issuer", K8S), "--federated-subject"),
        (
            ("--federated-issuer", K8S, "--federated-subject", "x", "--federated-claim", "novalue"),
            "NAME=VALUE",
        ),
        (("--kubernetes", "a/b", "--federated-glob"), "only for --github"),
        (("--github", "evil/*:ref:refs/heads/main", "--federated-glob"), "ORG/REPO"),
        (("--federated-issuer", "http://idp.example", "--federated-subject", "x"), "https"),
        (
            ("--spiffe", "spiffe://example.org/x", "--spiffe-bundle", "/b.json", "--federated-jwks-url", K8S),
            "--spiffe-bundle, not",
        ),
        (
            ("--spiffe", "spiffe://example.org/x", "--spiffe-bundle", "/b", "--federated-ca-file", "/ca"),
            "go with jwks_url",
        ),
    ],
)
def test_bad_federated_options_are_one_error_line(
    registry_path: Path, options: tuple[str, ...], message: str
) -> None:
    code, out, err = run("clients", "add", "c", "--audience", AUD, *options)
    assert code != 0 and out == ""
    assert err.startswith("s2s: error:") and err.count("\n") == 1 and message in err, err
    assert not registry_path.exists()


def test_list_shows_the_federated_identities(registry_path: Path) -> None:
    add("k8s", "--kubernetes", "shop/orders", "--kubernetes-issuer", K8S)
    code, out, _ = run("clients", "add", "plain", "--audience", AUD)
    assert code == 0
    code, out, _ = run("clients", "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert "FEDERATED" in header and "AUTH" in header
    k8s_row = next(r for r in rows if r.startswith("k8s"))
    assert "federated" in k8s_row and f"kubernetes:system:serviceaccount:shop:orders@{K8S}" in k8s_row
    listed = json.loads(run("clients", "list", "--json")[1])
    assert [c.get("federated", []) != [] for c in listed] == [True, False]


def test_a_spiffe_bundle_endpoint_may_have_its_own_ca(registry_path: Path) -> None:
    data = add(
        "svid",
        "--spiffe", "spiffe://example.org/ns/shop/sa/orders",
        "--spiffe-bundle", "https://spire.example.org:8443/bundle",
        "--federated-ca-file", "/etc/spire/ca.pem",
    )  # fmt: skip
    (credential,) = data["federated"]
    assert credential["jwks_url"] == "https://spire.example.org:8443/bundle"
    assert credential["ca_file"] == "/etc/spire/ca.pem"


def test_federate_adds_and_removes_a_credential_of_an_existing_client(registry_path: Path) -> None:
    """A secret client moves to its platform token: the credential is added beside its secret."""
    code, out, _ = run("clients", "add", "orders", "--audience", AUD)
    assert code == 0 and "client_secret: " in out
    gh = ("--github", "acme/shop:ref:refs/heads/main")
    code, out, err = run("clients", "federate", "orders", *gh)
    assert code == 0, err
    assert "federated credential github:repo:acme/shop:ref:refs/heads/main added to client orders" in out
    (client,) = FileClientRegistry(registry_path).all()
    assert client.secret_hash is not None and [f.subject for f in client.federated] == [
        "repo:acme/shop:ref:refs/heads/main"
    ]
    code, _, err = run("clients", "federate", "orders", *gh)
    assert code == 1 and "already has this federated credential" in err and err.count("\n") == 1
    data = json.loads(run("clients", "federate", "orders", "--kubernetes", "shop/orders", "--json")[1])
    assert [f["kind"] for f in data["federated"]] == ["github", "kubernetes"]
    assert run("clients", "federate", "orders", *gh, "--remove")[0] == 0
    (client,) = FileClientRegistry(registry_path).all()
    assert [f.kind for f in client.federated] == ["kubernetes"] and client.secret_hash is not None


def test_federate_refuses_what_would_leave_a_client_without_credentials(registry_path: Path) -> None:
    add("k8s", "--kubernetes", "shop/orders", "--kubernetes-issuer", K8S)
    code, _, err = run(
        "clients", "federate", "k8s", "--kubernetes", "shop/orders", "--kubernetes-issuer", K8S, "--remove"
    )
    assert code == 1 and "needs a secret, a public JWKS or a federated credential" in err
    assert len(FileClientRegistry(registry_path).get("k8s").federated) == 1  # type: ignore[union-attr]
    code, _, err = run("clients", "federate", "nobody", "--kubernetes", "shop/orders")
    assert code == 1 and "no client 'nobody'" in err
    code, _, err = run("clients", "federate", "k8s")
    assert code == 1 and "name the credential" in err


def test_federate_in_a_secrets_manager_registry(sm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_CLIENTS", "aws-sm://s2s/fed-cli")
    code, _, err = run(
        "clients", "add", "orders", "--audience", AUD, "--spiffe", SVID, "--spiffe-bundle", BUNDLE
    )
    assert code == 0, err
    code, _, err = run("clients", "federate", "orders", "--github", "acme/shop:environment:prod")
    assert code == 0, err
    stored = json.loads(
        sm.get_secret_value(SecretId="s2s/fed-cli", VersionStage="AWSCURRENT")["SecretString"]
    )
    assert [f["kind"] for f in stored["clients"][0]["federated"]] == ["spiffe", "github"]
    assert "secret_hash" not in stored["clients"][0]
    listed = json.loads(run("clients", "list", "--json")[1])
    assert listed[0]["auth_method"] == "federated" and len(listed[0]["federated"]) == 2


def test_federate_on_a_missing_registry_says_where_it_looked(registry_path: Path) -> None:
    code, out, err = run("clients", "federate", "orders", "--kubernetes", "shop/orders")
    assert code == 1 and out == ""
    assert err.startswith("s2s: error:") and err.count("\n") == 1 and "no client registry at" in err
    assert not registry_path.exists()  # nor its lock: reading or changing must not create it
    assert not registry_path.parent.exists() or list(registry_path.parent.iterdir()) == []
