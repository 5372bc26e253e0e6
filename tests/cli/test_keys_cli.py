from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from s2s.cli import main
from s2s.clock import FakeClock
from s2s.keys import FileKeyStore, KeySet, KeyState, RotationPolicy, SigningKey, generate_key
from s2s.keys._rotation import format_time

POLICY = RotationPolicy()
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


class Cli:
    """Runs `s2s` in-process against one file store, remembering every byte it printed."""

    def __init__(self, directory: Path, clock: FakeClock) -> None:
        self.store = f"file://{directory}"
        self.directory = directory
        self.clock = clock
        self.runner = CliRunner()
        self.printed: list[str] = []

    def __call__(self, *args: str, store: bool = True, env: dict[str, str] | None = None) -> Result:
        argv = [*args, "--store", self.store] if store else list(args)
        result = self.runner.invoke(main, argv, obj={"clock": self.clock}, env=env)
        self.printed.append(result.output)
        if isinstance(result.exception, Exception) and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def keyset(self) -> Any:
        return FileKeyStore(self.directory).load()[0]

    def private_values(self) -> set[str]:
        values: set[str] = set()
        for key in self.keyset():
            assert key.private_jwk is not None
            values.update(str(key.private_jwk[m]) for m in PRIVATE_MEMBERS if m in key.private_jwk)
        return values


@pytest.fixture
def cli(tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    for name in list(os.environ):
        if name.startswith("S2S_"):
            monkeypatch.delenv(name)
    runner = Cli(tmp_path / "keys", clock)
    yield runner
    # Whatever the test did, no private member of any key ever reached the terminal.
    printed = "\n".join(runner.printed)
    if runner.directory.joinpath("keyset.json").exists():
        for value in runner.private_values():
            assert value not in printed


def one_error_line(result: Result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("s2s: error: ")
    return lines[0]


def test_init_creates_current_and_next(cli: Cli) -> None:
    result = cli("keys", "init")
    assert result.exit_code == 0, result.output
    keyset = cli.keyset()
    assert keyset.current is not None and keyset.next is not None
    assert keyset.current.alg == "ES256"
    assert keyset.current.kid in result.stdout and keyset.next.kid in result.stdout
    assert (cli.directory / "keyset.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("alg", ["RS256", "PS256", "Ed25519"])
def test_init_with_alg_and_rotation_keeps_it(cli: Cli, alg: str) -> None:
    assert cli("keys", "init", "--alg", alg).exit_code == 0
    cli.clock.advance(POLICY.publish_lead)
    assert cli("keys", "rotate").exit_code == 0
    assert {k.alg for k in cli.keyset()} == {alg}


def test_init_refuses_a_store_that_has_keys(cli: Cli) -> None:
    cli("keys", "init")
    before = (cli.directory / "keyset.json").read_bytes()
    line = one_error_line(cli("keys", "init"))
    assert "keyset_exists" in line and "already holds 2 key(s)" in line
    assert (cli.directory / "keyset.json").read_bytes() == before


def test_init_fills_an_existing_but_empty_store(cli: Cli) -> None:
    FileKeyStore(cli.directory).save(FileKeyStore(cli.directory).load()[0], None)
    assert cli("keys", "init").exit_code == 0
    assert len(cli.keyset()) == 2


def test_list_table_and_json(cli: Cli) -> None:
    cli("keys", "init")
    keyset = cli.keyset()
    table = cli("keys", "list")
    assert table.exit_code == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["KID", "ALG", "STATE"]
    assert rows[0].split()[:3] == [keyset.current.kid, "ES256", "current"]
    assert rows[1].split()[:3] == [keyset.next.kid, "ES256", "next"]
    assert f"may sign from {format_time(cli.clock.now() + POLICY.publish_lead)}" in rows[1]
    data = json.loads(cli("keys", "list", "--json").stdout)
    assert data["store"] == cli.store
    assert data["version"] == FileKeyStore(cli.directory).load()[1]
    assert {(k["kid"], k["state"], k["published"]) for k in data["keys"]} == {
        (keyset.current.kid, "current", True),
        (keyset.next.kid, "next", True),
    }
    assert all("private_jwk" not in k and "public_jwk" not in k for k in data["keys"])


def test_list_of_a_missing_store_says_where_it_looked_and_how_to_start(cli: Cli) -> None:
    for args in (("keys", "list"), ("keys", "list", "--json")):
        result = cli(*args)
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("s2s: error: no key store at ")
        assert f"s2s keys init --store {cli.store}" in result.stderr


def test_rotate_too_early_is_refused_with_the_safe_time(cli: Cli) -> None:
    cli("keys", "init")
    before = (cli.directory / "keyset.json").read_bytes()
    cli.clock.advance(600)
    line = one_error_line(cli("keys", "rotate"))
    safe = format_time(cli.clock.now() - 600 + POLICY.publish_lead)
    assert "rotation_refused" in line
    assert f"safe from {safe}" in line
    assert "--force" in line
    assert (cli.directory / "keyset.json").read_bytes() == before


def test_rotate_dry_run_says_what_would_change_and_writes_nothing(cli: Cli) -> None:
    cli("keys", "init")
    keyset = cli.keyset()
    before = (cli.directory / "keyset.json").read_bytes()
    # too early, a dry run is refused like the real thing
    assert "rotation_refused" in one_error_line(cli("keys", "rotate", "--dry-run"))
    cli.clock.advance(POLICY.publish_lead)
    result = cli("keys", "rotate", "--dry-run")
    assert result.exit_code == 0
    assert f"would: {keyset.current.kid}: current -> previous" in result.stdout
    assert f"would: {keyset.next.kid}: next -> current" in result.stdout
    assert "would: new ES256 key" in result.stdout
    assert (cli.directory / "keyset.json").read_bytes() == before
    data = json.loads(cli("keys", "rotate", "--dry-run", "--json").stdout)
    assert data["dry_run"] is True
    assert {(c["from"], c["to"]) for c in data["changes"]} == {
        ("current", "previous"),
        ("next", "current"),
        (None, "next"),
    }
    assert (cli.directory / "keyset.json").read_bytes() == before


def test_rotate_when_safe(cli: Cli) -> None:
    cli("keys", "init")
    old = cli.keyset()
    cli.clock.advance(POLICY.publish_lead)
    result = cli("keys", "rotate")
    assert result.exit_code == 0, result.output
    new = cli.keyset()
    assert new.current.kid == old.next.kid
    assert new.get(old.current.kid).state is KeyState.PREVIOUS
    assert result.stderr == ""


def test_forced_rotation_works_and_explains_the_risk(cli: Cli) -> None:
    cli("keys", "init")
    old = cli.keyset()
    result = cli("keys", "rotate", "--force")
    assert result.exit_code == 0
    assert cli.keyset().current.kid == old.next.kid
    assert "warning: forced rotation" in result.stderr
    assert "(up to poll_interval + jwks_max_age = 330s old) reject its tokens" in result.stderr
    # later, but still before publish_lead: the remaining risk is slower caches
    cli.clock.advance(POLICY.poll_interval + POLICY.jwks_max_age)
    later = cli("keys", "rotate", "--force")
    assert later.exit_code == 0
    assert "caching the JWKS longer than the 330s this policy assumes" in later.stderr
    # once publish_lead has passed, --force changes nothing and warns about nothing
    cli.clock.advance(POLICY.publish_lead)
    assert cli("keys", "rotate", "--force").stderr == ""


def test_rotation_policy_comes_from_the_environment(cli: Cli) -> None:
    cli("keys", "init")
    cli.clock.advance(400)
    env = {"S2S_PUBLISH_LEAD": "360", "S2S_JWKS_MAX_AGE": "300", "S2S_POLL_INTERVAL": "30"}
    assert cli("keys", "rotate", env=env).exit_code == 0
    line = one_error_line(cli("keys", "rotate", env={"S2S_PUBLISH_LEAD": "5"}))
    assert "invalid_configuration" in line and "publish_lead" in line


def test_revoke_current(cli: Cli) -> None:
    cli("keys", "init")
    old = cli.keyset()
    cli.clock.advance(POLICY.publish_lead)
    result = cli("keys", "revoke", "--kid", old.current.kid)
    assert result.exit_code == 0
    new = cli.keyset()
    assert new.get(old.current.kid).state is KeyState.REVOKED
    assert new.current.kid == old.next.kid
    jwks = json.loads(cli("jwks").stdout)
    assert old.current.kid not in {k["kid"] for k in jwks["keys"]}
    again = cli("keys", "revoke", "--kid", old.current.kid)
    assert again.exit_code == 0 and "already revoked" in again.stdout


def test_revoking_a_young_next_key_warns(cli: Cli) -> None:
    cli("keys", "init")
    first = cli.keyset()
    cli("keys", "revoke", "--kid", first.current.kid)  # the next key is brand new
    result = cli("keys", "revoke", "--kid", cli.keyset().current.kid)
    assert result.exit_code == 0
    assert "verifiers with an older cached JWKS reject" in result.stderr


def test_revoke_next_and_unknown(cli: Cli) -> None:
    cli("keys", "init")
    old = cli.keyset()
    # --kid: a kid (base64url) starts with "-" about once in 64 keys and would read as an option.
    data = json.loads(cli("keys", "revoke", "--kid", old.next.kid, "--json").stdout)
    assert {(c["kid"], c["to"]) for c in data["changes"]} >= {(old.next.kid, "revoked")}
    assert cli.keyset().current.kid == old.current.kid
    line = one_error_line(cli("keys", "revoke", "no-such-kid"))
    assert "key_not_found" in line


def dash_key(state: KeyState) -> SigningKey:
    """A key whose kid starts with "-" (about one in 64 does)."""
    while not (key := generate_key("ES256", now=0.0, state=state)).kid.startswith("-"):
        pass
    return key


def test_a_kid_starting_with_a_dash_can_be_revoked(cli: Cli) -> None:
    # Seen as a 1-in-64 flaky test: click took such a kid for an unknown option.
    current = generate_key("ES256", now=0.0, state=KeyState.CURRENT)
    FileKeyStore(cli.directory).save(KeySet((current, dash_key(KeyState.NEXT))), None)
    kid = cli.keyset().next.kid
    assert kid.startswith("-")
    assert "No such option" in cli("keys", "revoke", kid).output  # why --kid exists
    result = cli("keys", "revoke", "--kid", kid, "--json")
    assert result.exit_code == 0, result.output
    assert cli.keyset().get(kid).state is KeyState.REVOKED
    # The usual `--` works too, with the options before it.
    again = cli("keys", "revoke", "--store", cli.store, "--", cli.keyset().next.kid, store=False)
    assert again.exit_code == 0, again.output
    assert "KID or --kid KID" in cli("keys", "revoke").output


def test_prune(cli: Cli) -> None:
    cli("keys", "init")
    old = cli.keyset()
    cli("keys", "revoke", "--kid", old.next.kid)
    assert "nothing to prune" in cli("keys", "prune").stdout
    cli.clock.advance(POLICY.retention)
    result = cli("keys", "prune")
    assert f"pruned {old.next.kid}" in result.stdout
    assert old.next.kid not in {k.kid for k in cli.keyset()}
    assert json.loads(cli("keys", "prune", "--json").stdout)["pruned"] == []


def test_jwks_prints_public_keys_only(cli: Cli) -> None:
    cli("keys", "init", "--alg", "RS256")
    keyset = cli.keyset()
    jwks = json.loads(cli("jwks").stdout)
    assert [k["kid"] for k in jwks["keys"]] == [keyset.current.kid, keyset.next.kid]
    for entry in jwks["keys"]:
        assert entry["alg"] == "RS256" and entry["kty"] == "RSA"
        assert not set(entry) & set(PRIVATE_MEMBERS)


def test_commands_on_an_empty_store_fail_in_one_line(cli: Cli) -> None:
    for args in (("keys", "rotate"), ("keys", "prune"), ("keys", "revoke", "x")):
        assert "empty_keyset" in one_error_line(cli(*args))
    assert json.loads(cli("jwks").stdout) == {"keys": []}


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("s3://bucket/keys", "invalid_configuration"),
        ("ftp://x", "invalid_configuration"),
        ("aws-sm://", "invalid_secret_reference"),  # the aws-sm:// grammar names what is wrong
        ("aws-sm://keys#field", "invalid_secret_reference"),  # a store owns the whole secret
        ("aws-sm://keys?stage=AWSPREVIOUS", "invalid_secret_reference"),  # and works on AWSCURRENT
    ],
)
def test_bad_store_url_is_one_line(cli: Cli, url: str, code: str) -> None:
    result = cli("keys", "list", "--store", url, store=False)
    assert code in one_error_line(result)


def test_corrupt_store_is_one_line_without_its_content(cli: Cli) -> None:
    cli("keys", "init")
    secrets = cli.private_values()
    path = cli.directory / "keyset.json"
    original = path.read_text()
    path.write_text(original[:-40])
    for args in (("keys", "list"), ("keys", "rotate"), ("jwks",)):
        line = one_error_line(cli(*args))
        assert "keystore_error" in line
        assert not any(s in line for s in secrets)
    path.write_text(original)  # the fixture's own leak check reads the store


def test_store_from_environment(cli: Cli) -> None:
    result = cli("keys", "init", store=False, env={"S2S_KEYSTORE": cli.store})
    assert result.exit_code == 0
    assert len(cli.keyset()) == 2


def test_secrets_manager_store(cli: Cli, sm: Any) -> None:
    url = "aws-sm://s2s/cli-test"
    assert cli("keys", "init", "--store", url, store=False).exit_code == 0
    listed = json.loads(cli("keys", "list", "--json", "--store", url, store=False).stdout)
    assert [k["state"] for k in listed["keys"]] == ["current", "next"]
    cli.clock.advance(POLICY.publish_lead)
    assert cli("keys", "rotate", "--store", url, store=False).exit_code == 0
    secret = json.loads(
        sm.get_secret_value(SecretId="s2s/cli-test", VersionStage="AWSCURRENT")["SecretString"]
    )
    assert len(secret["keys"]) == 3
    printed = "\n".join(cli.printed)
    for key in secret["keys"]:
        assert key["private_jwk"]["d"] not in printed


class _Broken:
    url = "file://broken"

    def load(self) -> Any:
        raise RuntimeError("d=PRIVATE-SCALAR")  # an unexpected error whose text must not be shown

    def save(self, keyset: Any, expected_version: str | None) -> str:
        raise AssertionError("not reached")


def test_unexpected_errors_are_one_line_and_s2s_debug_shows_the_traceback(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("s2s.cli._keys.open_keystore", lambda url: _Broken())
    line = one_error_line(cli("keys", "list"))
    assert "RuntimeError" in line and "PRIVATE-SCALAR" not in line
    # The line promises details with S2S_DEBUG=1: the error then propagates (a traceback), on request.
    assert "S2S_DEBUG=1" in line
    with pytest.raises(RuntimeError, match="PRIVATE-SCALAR"):
        cli("keys", "list", env={"S2S_DEBUG": "1"})
