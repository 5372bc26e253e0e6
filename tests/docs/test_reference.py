"""The generated references follow the code, and the site builds with warnings as errors."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("s2s_docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hooks = load_hooks()


def test_settings_reference_lists_what_from_env_reads() -> None:
    page = hooks.settings_markdown()
    for name in ("S2S_KEYSTORE", "S2S_PUBLISH_LEAD", "S2S_TOKEN_TIMEOUT", "S2S_VERIFIER_JWKS_URI",
                 "S2S_ENTRA_TOKEN_CACHE_PATH", "S2S_RESOURCE_PUBLIC_DOCS"):  # fmt: skip
        assert f"| `{name}` |" in page
    # Defaults are read from the built objects, not written by hand.
    assert "| `S2S_TOKEN_TTL` | `float` | `1800` |" in page
    assert "| `S2S_VERIFIER_ISSUER` | `str` | **required** |" in page
    assert "| `S2S_SIGNER` | `str or None` | `unset` |" in page


def test_a_variable_the_code_does_not_read_fails_the_build() -> None:
    section = hooks.SECTIONS[0]
    stale = dataclasses.replace(section, descriptions={**section.descriptions, "NO_SUCH": "x"})
    undocumented = dataclasses.replace(
        section, descriptions={k: v for k, v in section.descriptions.items() if k != "PORT"}
    )
    for broken in (stale, undocumented):
        original = hooks.SECTIONS
        hooks.SECTIONS = (broken,)
        try:
            with pytest.raises(RuntimeError, match=r"NO_SUCH|S2S_PORT"):
                hooks.settings_markdown()
        finally:
            hooks.SECTIONS = original


def test_cli_reference_covers_every_command() -> None:
    import click

    from s2s.cli import main

    page = hooks.cli_markdown()
    ctx = click.Context(main, info_name="s2s")
    for group in ("keys", "clients", "state"):
        command = main.get_command(ctx, group)
        assert isinstance(command, click.Group)
        for name in command.list_commands(ctx):
            assert f"`s2s {group} {name}`" in page
    assert "`s2s serve`" in page and "`s2s token`" in page and "`s2s jwks`" in page
    assert "`--store`: `S2S_KEYSTORE`" in page
    for name in ("config", "keys", "token"):
        assert f"`litestar s2s {name}`" in page
    assert "--no-fetch" in page and "--allow-remote" in page


def test_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "site" / "reference" / "configuration" / "index.html").read_text()
    assert "S2S_VERIFIER_MAX_STALENESS" in config
    assert "<!-- s2s:settings -->" not in config
    assert (tmp_path / "site" / "img" / "key-lifecycle.svg").exists()
