"""``s2s token --assertion-file`` with a file whose token holds odd contents: a token or one
``s2s: error:`` line, never a traceback (the client reads ``exp`` without verifying it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2s.cli import main
from tests.client.assertion_support import TokenServer
from tests.client.test_assertion_contents import HUGE, NEGATIVE, OPAQUE, token_with


@pytest.fixture(autouse=True)
def no_s2s_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("S2S_"):
            monkeypatch.delenv(name)


@pytest.fixture
def server() -> Iterator[TokenServer]:
    endpoint = TokenServer(lambda assertion: None)  # the issuer's verdict is not the point here
    yield endpoint
    endpoint.close()


def run(server: TokenServer, path: Path) -> tuple[int, str, str]:
    issuer = server.url.removesuffix("/oauth2/token")
    args = ["token", "--issuer", issuer, "--client-id", "orders", "--assertion-file", str(path)]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("payload", [HUGE[0], HUGE[2], OPAQUE[0], OPAQUE[4]])
def test_a_huge_exp_or_an_opaque_payload_is_sent(payload: bytes, server: TokenServer, tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = token_with(payload)
    path.write_text(token)
    code, out, err = run(server, path)
    assert code == 0 and err == "" and out.startswith("at-"), err
    assert [form["client_assertion"] for form in server.forms] == [token]


@pytest.mark.parametrize("payload", NEGATIVE)
def test_a_negative_exp_is_one_error_line(payload: bytes, server: TokenServer, tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = token_with(payload)
    path.write_text(token)
    code, out, err = run(server, path)
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"s2s: error: the assertion file {path} has an assertion that expired at ")
    assert all(part not in err for part in token.split("."))
    assert server.forms == []
