"""``s2s token --assertion-file`` (and ``litestar s2s token``): a token with no secret anywhere,
through the same TokenClient path as every other caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2s.cli import main
from s2s.litestar._cli import s2s_cli_group
from s2s.verify import TokenVerifier, VerifierConfig
from tests.client.assertion_support import TokenServer, claims_of, platform_token, write_atomically

AUDIENCE = "https://orders.internal"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_s2s_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("S2S_"):
            monkeypatch.delenv(name)


@pytest.fixture
def server() -> Iterator[TokenServer]:
    def check(assertion: str) -> str | None:
        return "expired" if claims_of(assertion)["exp"] <= time.time() else None

    endpoint = TokenServer(check)
    yield endpoint
    endpoint.close()


def issuer_of(server: TokenServer) -> str:
    return server.url.removesuffix("/oauth2/token")


def one_error_line(result: object, code: int = 1) -> str:
    exit_code, stdout, stderr = result.exit_code, result.stdout, result.stderr  # type: ignore[attr-defined]
    assert exit_code == code, stderr
    assert stdout == "" and stderr.count("\n") == 1 and stderr.startswith("s2s: error: "), stderr
    line: str = stderr
    return line


def test_a_token_from_an_assertion_file_in_a_real_process(server: TokenServer, tmp_path: Path) -> None:
    path = tmp_path / "token"
    first = platform_token(time.time() + 600)
    write_atomically(path, first)
    args = ["token", "--issuer", issuer_of(server), "--client-id", "orders", "--assertion-file", str(path)]
    args += ["--audience", AUDIENCE, "--scope", "orders:read"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    command = [str(Path(sys.executable).parent / "s2s"), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("at-") and done.stderr == ""
    [form] = server.forms
    assert form["client_assertion"] == first and form["client_id"] == "orders"
    assert form["audience"] == AUDIENCE and form["scope"] == "orders:read"
    # The credential travelled by file: nothing in the argument list or the environment holds it.
    assert all(part not in " ".join(command) for part in first.split("."))
    assert all(first not in value for value in env.values())

    second = platform_token(time.time() + 600)
    write_atomically(path, second)  # rotated: the next run sends the new one
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300 and body["scope"] == "orders:read"
    assert server.forms[1]["client_assertion"] == second


def test_the_variable_names_the_file_too(server: TokenServer, tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = platform_token(time.time() + 600)
    path.write_text(token)
    env = {"S2S_CLIENT_ASSERTION_FILE": str(path), "S2S_CLIENT_ID": "orders", "S2S_ISSUER": issuer_of(server)}
    result = CliRunner().invoke(main, ["token"], env=env)
    assert result.exit_code == 0, result.stderr
    assert server.forms[0]["client_assertion"] == token and "audience" not in server.forms[0]


def test_an_expired_file_is_one_error_line_naming_the_file(server: TokenServer, tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = platform_token(time.time() - 30)
    path.write_text(token)
    args = ["token", "--issuer", issuer_of(server), "--client-id", "orders", "--assertion-file", str(path)]
    line = one_error_line(CliRunner().invoke(main, args))
    assert f"the assertion file {path} has an assertion that expired at " in line
    assert all(part not in line for part in token.split("."))
    assert server.forms == []  # nothing was sent


def test_a_missing_file_is_one_error_line(server: TokenServer, tmp_path: Path) -> None:
    path = tmp_path / "nope"
    args = ["token", "--issuer", issuer_of(server), "--client-id", "orders", "--assertion-file", str(path)]
    line = one_error_line(CliRunner().invoke(main, args))
    assert line == f"s2s: error: cannot read the assertion file {path}: No such file or directory\n"


def test_exactly_one_credential_is_a_usage_error_naming_the_alternatives(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(platform_token(time.time() + 600))
    args = ["token", "--client-id", "orders", "--assertion-file", str(path)]
    line = one_error_line(CliRunner().invoke(main, args, env={"S2S_CLIENT_SECRET": "s3cr3t"}), code=2)
    assert "give exactly one of --client-secret, --private-key, --assertion-file" in line
    assert "--client-secret and --assertion-file were given" in line and "s3cr3t" not in line
    line = one_error_line(CliRunner().invoke(main, ["token", "--client-id", "orders"]), code=2)
    assert "(none was given)" in line


def test_litestar_s2s_token_takes_the_same_assertion_file(server: TokenServer, tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = platform_token(time.time() + 600)
    path.write_text(token)
    group = s2s_cli_group(TokenVerifier(VerifierConfig.for_s2s(issuer_of(server), AUDIENCE)))
    result = CliRunner().invoke(group, ["token", "--client-id", "orders", "--assertion-file", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("at-")
    assert server.forms[0]["client_assertion"] == token and server.forms[0]["audience"] == AUDIENCE
    path.write_text(platform_token(time.time() - 5))
    expired = CliRunner().invoke(group, ["token", "--client-id", "orders", "--assertion-file", str(path)])
    assert expired.exit_code == 1
    assert expired.stderr.startswith("litestar s2s: error: assertion_expired: the assertion file ")


def test_a_private_key_is_the_third_credential(tmp_path: Path) -> None:
    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "orders.pem"
    path.write_bytes(pem)
    path.chmod(0o600)
    endpoint: list[TokenServer] = []

    def check(assertion: str) -> str | None:
        claims = pyjwt.decode(assertion, key.public_key(), algorithms=["ES256"], audience=endpoint[0].url)
        return None if claims["iss"] == claims["sub"] == "orders" else "wrong iss/sub"

    endpoint.append(TokenServer(check))
    try:
        args = ["token", "--issuer", issuer_of(endpoint[0]), "--client-id", "orders"]
        result = CliRunner().invoke(main, [*args, "--private-key", str(path), "--audience", AUDIENCE])
        assert result.exit_code == 0, result.stderr
        assert endpoint[0].refusals == [] and len(endpoint[0].accepted) == 1
        assert "PRIVATE KEY" not in result.output
    finally:
        endpoint[0].close()
