"""Statements in the docs that no example runs: checked against the code that makes them true."""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2s.cli import main
from s2s.keys import RotationPolicy
from s2s.verify import VerifierConfig

ROOT = Path(__file__).resolve().parents[2]


def _readme_files() -> list[str]:
    text = (ROOT / "keys" / "README.md").read_text()
    table = text[text.index("| file |") : text.index("`keyset.json` is a secret")]
    return [
        name
        for cell in re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE)
        for name in re.findall(r"`([^`]+)`", cell)
    ]


def test_keys_readme_lists_every_file_the_store_and_the_registry_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("S2S_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # the defaults: file://keys and file://keys/clients.json
    renamed: list[str] = []
    real_replace = os.replace

    def recording_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renamed.append(Path(src).name)  # the temporary files of atomic writes
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    runner = CliRunner()
    for args in (
        ["keys", "init"],
        ["keys", "rotate", "--force"],
        ["clients", "add", "svc", "--audience", "https://api.example.internal"],
        ["clients", "remove", "svc"],
    ):
        assert runner.invoke(main, args).exit_code == 0, args
    created = sorted({p.name for p in (tmp_path / "keys").iterdir()} | set(renamed))
    assert renamed and "keyset.json" in created and "clients.json" in created
    documented = _readme_files()
    for name in created:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in documented), name


def test_rotate_keys_revocation_window_uses_the_default_numbers() -> None:
    page = (ROOT / "docs" / "rotate-keys.md").read_text()
    policy = RotationPolicy()
    config = VerifierConfig.for_s2s("https://issuer.example", "api")
    poll, max_age = int(policy.poll_interval), int(policy.jwks_max_age)
    assert config.jwks_min_ttl < max_age <= config.jwks_ttl  # so the verifier caches for max-age
    assert f"`S2S_POLL_INTERVAL` ({poll} s by default)" in page
    assert f"{poll} + {max_age} = {poll + max_age} s after the" in page
    assert f"within {poll + max_age + int(config.http_timeout)} s" in page
    assert (
        f"`jwks_min_ttl`, {int(config.jwks_min_ttl)} s" in page
        and f"`jwks_ttl`, {int(config.jwks_ttl)} s" in page
    )


def test_graph_page_names_the_msal_extra_that_exists() -> None:
    page = (ROOT / "docs" / "graph-on-behalf-of.md").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "pip install 's2s[msal]'" in page
    assert any(req.startswith("msal") for req in extras["msal"])
