"""``s2s clients rotate-secret``: a new secret printed once, the old one kept for the grace."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2s.cli import main
from s2s.clock import FakeClock
from s2s.issuer import FileClientRegistry, SecretVerifier


@pytest.fixture
def registry_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "clients.json"
    monkeypatch.setenv("S2S_CLIENTS", f"file://{path}")
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def secret_of(out: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("client_secret: "))


def test_rotate_prints_the_new_secret_once_and_keeps_the_old_one_for_the_grace(registry_env: Path) -> None:
    code, out, _ = run("clients", "add", "orders", "--audience", "https://a")
    old = secret_of(out)
    before = time.time()
    code, out, err = run("clients", "rotate-secret", "orders", "--grace", "2h")
    assert code == 0, err
    new = secret_of(out)
    assert new != old and len(new) >= 43
    assert "shown only once" in out and "stays valid until" in out
    stored = registry_env.read_text()
    assert old not in stored and new not in stored
    # Both work now (checked as the issuer does, on a clock that is the real time).
    client = FileClientRegistry(registry_env).all()[0]
    verifier = SecretVerifier(FakeClock(time.time()))
    assert verifier.verify(client, old) and verifier.verify(client, new)
    (not_after,) = [s.not_after for s in client.previous_secrets]
    assert not_after is not None and before + 7200 <= not_after <= time.time() + 7200
    late = SecretVerifier(FakeClock(not_after))
    assert not late.verify(client, old) and late.verify(client, new)

    code, out, _ = run("clients", "list")
    assert code == 0 and "SECRETS" in out.splitlines()[0]
    assert "2 (old until " in out.splitlines()[1]
    assert old not in out and new not in out and "sha256$" not in out
    listed = json.loads(run("clients", "list", "--json")[1])[0]
    assert listed["secret_count"] == 2 and listed["previous_secrets_not_after"] == [not_after]
    assert "secret_hash" not in json.dumps(listed) and "previous_secrets" not in listed


def test_rotate_json_and_grace_zero(registry_env: Path) -> None:
    run("clients", "add", "orders", "--audience", "https://a")
    run("clients", "rotate-secret", "orders")  # default grace: one hour
    code, out, _ = run("clients", "rotate-secret", "orders", "--grace", "0", "--json")
    assert code == 0
    data = json.loads(out)
    # --grace 0: the new secret alone, every earlier one (the one still in its grace too) ended.
    assert data["secret_count"] == 1 and data["previous_secrets_not_after"] == []
    client = FileClientRegistry(registry_env).all()[0]
    assert len(client.secrets) == 1 and SecretVerifier().verify(client, data["client_secret"])
    assert run("clients", "list")[1].splitlines()[1].split()[-1] == "1"


def test_the_default_grace_is_one_hour(registry_env: Path) -> None:
    run("clients", "add", "orders", "--audience", "https://a")
    start = time.time()
    data = json.loads(run("clients", "rotate-secret", "orders", "--json")[1])
    (not_after,) = data["previous_secrets_not_after"]
    assert start + 3600 <= not_after <= time.time() + 3600


def test_any_later_write_prunes_secrets_whose_grace_ended(registry_env: Path) -> None:
    # A rotation made a day ago (on a clock set back), with a one-hour grace.
    run("clients", "add", "orders", "--audience", "https://a")
    past = FileClientRegistry(registry_env, clock=FakeClock(time.time() - 86400))
    current = past.all()[0]
    past.add(
        current.with_new_secret(current.secret_hash or "", now=time.time() - 86400, grace=3600),
        replace_existing=True,
    )
    assert "previous_secrets" in registry_env.read_text()
    assert "1 (+1 expired)" in run("clients", "list")[1]
    assert run("clients", "add", "billing", "--audience", "https://b")[0] == 0
    assert "previous_secrets" not in registry_env.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rotate-secret", "nobody"), "no client 'nobody'"),
        (("rotate-secret", "orders", "--grace", "8d"), "between 0 and 7d"),
        (("rotate-secret", "orders", "--grace", "soon"), "is not a duration"),
        (("rotate-secret", "orders", "--grace", "-1h"), "is not a duration"),
        (("rotate-secret", "keyed"), "private_key_jwt"),
    ],
)
def test_rotate_refusals_are_one_line(
    registry_env: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    run("clients", "add", "orders", "--audience", "https://a")
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
    }
    (tmp_path / "k.json").write_text(json.dumps(jwk))
    assert (
        run("clients", "add", "keyed", "--audience", "https://a", "--jwks", str(tmp_path / "k.json"))[0] == 0
    )
    before = registry_env.read_text()
    code, out, err = run("clients", *args)
    assert code != 0 and out == ""
    assert err.startswith("s2s: error:") and err.count("\n") == 1 and message in err
    assert registry_env.read_text() == before  # nothing written


def test_rotate_on_a_missing_registry_says_where_it_looked(registry_env: Path) -> None:
    code, _, err = run("clients", "rotate-secret", "orders")
    assert code == 1 and err.count("\n") == 1 and "no client registry at" in err
    assert not registry_env.exists()


def test_the_clients_page_states_the_limits_the_code_enforces() -> None:
    from s2s.issuer._clients import DEFAULT_SECRET_GRACE, MAX_PREVIOUS_SECRETS, MAX_SECRET_GRACE

    page = (Path(__file__).resolve().parents[2] / "docs" / "clients.md").read_text()
    section = page[page.index("## Rotate a client secret") :]
    assert f"default `{DEFAULT_SECRET_GRACE / 3600:g}h`, at most `{MAX_SECRET_GRACE / 86400:g}d`" in section
    assert (
        f"at most {MAX_PREVIOUS_SECRETS + 1} secrets: the current one and {MAX_PREVIOUS_SECRETS}" in section
    )
    help_text = run("clients", "rotate-secret", "--help")[1]
    assert f"at most {MAX_SECRET_GRACE / 86400:g}d" in help_text and "[default: 1h]" in help_text
