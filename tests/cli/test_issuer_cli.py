"""``s2s clients``, ``s2s serve`` and ``s2s token``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from click.testing import CliRunner
from joserfc.jwk import ECKey

from s2s.cli import main
from s2s.cli._serve import DEMO_AUDIENCE
from tests.support import free_port, running_issuer


@pytest.fixture
def registry_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "clients.json"
    monkeypatch.setenv("S2S_CLIENTS", f"file://{path}")
    monkeypatch.setenv("S2S_KEYSTORE", f"file://{tmp_path / 'keys'}")
    return path


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_clients_add_list_remove(registry_env: Path) -> None:
    code, out, _ = run("clients", "add", "orders", "--audience", "https://a", "--scope", "x", "--role", "r")
    assert code == 0
    secret = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("client_secret: "))
    assert len(secret) >= 43
    stored = registry_env.read_text()
    assert secret not in stored and "sha256$" in stored
    hash_value = json.loads(stored)["clients"][0]["secret_hash"]

    code, out, _ = run("clients", "list")
    assert code == 0 and "orders" in out and "client_secret" in out.split("\n")[1]
    assert secret not in out and hash_value not in out and "scrypt" not in out
    code, out, _ = run("clients", "list", "--json")
    listed = json.loads(out)
    assert listed[0]["client_id"] == "orders" and listed[0]["audiences"] == ["https://a"]
    assert "secret_hash" not in listed[0] and secret not in out and hash_value not in out

    code, _, err = run("clients", "add", "orders", "--audience", "https://a")
    assert code == 1 and err.count("\n") == 1 and "already exists" in err
    assert run("clients", "remove", "orders")[0] == 0
    code, _, err = run("clients", "remove", "orders")
    assert code == 1 and err.startswith("s2s: error:") and err.count("\n") == 1
    assert json.loads(run("clients", "list", "--json")[1]) == []


def test_clients_add_with_jwks(registry_env: Path, tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256", private=True)
    public_file = tmp_path / "pub.json"
    public_file.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    code, out, _ = run(
        "clients", "add", "pkj", "--audience", "https://a", "--jwks", str(public_file), "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["auth_method"] == "private_key_jwt" and "client_secret" not in data
    assert data["kids"] == [key.thumbprint()]

    private_file = tmp_path / "priv.json"
    private = key.as_dict(private=True)
    private_file.write_text(json.dumps(private))
    code, out, err = run("clients", "add", "pkj2", "--audience", "https://a", "--jwks", str(private_file))
    assert code == 1 and "public keys only" in err
    assert str(private["d"]) not in out + err
    code, _, err = run("clients", "add", "bad", "--audience", "a", "--jwks", str(tmp_path / "missing.json"))
    assert code == 1 and err.count("\n") == 1


def test_serve_demo_reports_existing_client_without_secret(
    registry_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s2s.cli import _serve as serve

    started: list[object] = []
    monkeypatch.setattr(serve, "_serve", lambda app, sock, **kw: started.append(sock.close()))
    code, out, _ = run("serve", "--demo", "--port", str(free_port()))
    assert code == 0 and len(started) == 1
    assert "client_secret=" in out and "export S2S_CLIENT_SECRET=" in out and "curl -s -K -" in out
    assert (registry_env.parent / "keyset.json").exists()
    code, out, _ = run("serve", "--demo", "--port", str(free_port()))
    assert code == 0 and "exists already" in out and "client_secret=" not in out
    assert "clients remove demo" in out


@pytest.fixture
def live_issuer(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``s2s serve --demo`` as a real process on 127.0.0.1; yields (issuer URL, demo secret)."""
    env = {
        **os.environ,
        "S2S_KEYSTORE": f"file://{tmp_path / 'keys'}",
        "S2S_CLIENTS": f"file://{tmp_path / 'keys' / 'clients.json'}",
    }
    with running_issuer(env, tmp_path, "--demo") as issuer:
        line = next(x for x in issuer.log.read_text().splitlines() if "client_secret=" in x)
        yield issuer.url, line.split("client_secret=", 1)[1].split()[0]


def test_token_command_against_a_live_server(live_issuer: tuple[str, str]) -> None:
    url, secret = live_issuer
    code, out, err = run(
        "token", "--issuer", url, "--client-id", "demo", "--audience", DEMO_AUDIENCE,
        "--scope", "orders:read", env={"S2S_CLIENT_SECRET": secret},
    )  # fmt: skip
    assert code == 0, err
    token = out.strip()
    jwks = jwt.PyJWKSet.from_dict(httpx.get(f"{url}/.well-known/jwks.json", trust_env=False).json())
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, jwks[kid].key, algorithms=["ES256"], audience=DEMO_AUDIENCE, issuer=url)
    assert claims["sub"] == "demo" and claims["scope"] == "orders:read"
    assert secret not in out + err

    code, out, err = run(
        "token", "--issuer", url, "--client-id", "demo", "--audience", DEMO_AUDIENCE,
        env={"S2S_CLIENT_SECRET": secret + "x"},
    )  # fmt: skip
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "invalid_client" in err and secret not in err


def test_token_command_unreachable_issuer() -> None:
    code, out, err = run(
        "token", "--issuer", f"http://127.0.0.1:{free_port()}", "--client-id", "x", "--client-secret", "y",
        "--timeout", "2",
    )  # fmt: skip
    assert code == 1 and out == "" and err.startswith("s2s: error: cannot reach") and err.count("\n") == 1


def test_serve_leaves_an_empty_store_empty_when_told_not_to_create_keys(tmp_path: Path) -> None:
    from s2s.cli._serve import prepare
    from s2s.issuer import IssuerSettings
    from s2s.keys import FileKeyStore

    env = {"S2S_KEYSTORE": f"file://{tmp_path / 'keys'}", "S2S_CLIENTS": f"file://{tmp_path / 'c.json'}"}
    prepare(IssuerSettings.from_env(environ={**env, "S2S_CREATE_KEYS": "false"}), demo=False)
    assert len(FileKeyStore(tmp_path / "keys").load()[0]) == 0
    prepare(IssuerSettings.from_env(environ=env), demo=False)
    assert FileKeyStore(tmp_path / "keys").load()[0].current is not None
