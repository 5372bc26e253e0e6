"""The generated references follow the code, and the site builds with warnings as errors."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
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
    # Alternatives are marked as such, not one of them "required" and the other optional.
    assert "| `S2S_ISSUER` | `str or None` | **one of** this or `S2S_TOKEN_ENDPOINT` |" in page
    assert "| `S2S_TOKEN_ENDPOINT` | `str or None` | **one of** this or `S2S_ISSUER` |" in page
    secret = "**one of** this or `S2S_CLIENT_PRIVATE_KEY` / `S2S_CLIENT_ASSERTION_FILE` |"
    assert f"| `S2S_CLIENT_SECRET` | `str or None` | {secret}" in page
    key = "**one of** this or `S2S_CLIENT_SECRET` / `S2S_CLIENT_ASSERTION_FILE` |"
    assert f"| `S2S_CLIENT_PRIVATE_KEY` | `str or None` | {key}" in page
    assert "**one of** this or `S2S_ENTRA_CERTIFICATE_KEY` / `S2S_ENTRA_PFX`" in page


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
    assert "[env var: S2S_KEYSTORE;" in page
    for name in ("config", "keys", "token"):
        assert f"`litestar s2s {name}`" in page
    assert "--no-fetch" in page and "--allow-remote" in page


def _help_blocks(page: str) -> dict[str, str]:
    """``{"s2s keys list": "<its help text>", ...}`` from the generated reference."""
    found = re.findall(r"^#+ `([^`]+)`\n\n```text\n(.*?)\n```$", page, re.DOTALL | re.MULTILINE)
    return dict(found)


def test_cli_reference_is_exactly_what_help_prints_with_every_environment_variable() -> None:
    import click

    from s2s.cli import main

    blocks = _help_blocks(hooks.cli_markdown())
    ours = {name: text for name, text in blocks.items() if name.startswith("s2s")}
    assert {"s2s", "s2s keys list", "s2s serve", "s2s token", "s2s state init"} <= set(ours)
    env = {**os.environ, "COLUMNS": "80"}
    for name, text in ours.items():
        shown = subprocess.run(
            [str(Path(sys.executable).parent / "s2s"), *name.split()[1:], "--help"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        assert shown == text + "\n", name
    # Every option read from the environment names its variable in that text.
    for path, command in hooks._commands(main, ["s2s"]):
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.envvar, str):
                assert f"env var: {param.envvar}" in " ".join(ours[" ".join(path)].split()), path


def test_api_reference_lists_every_public_module_and_every_exported_name() -> None:
    import importlib

    from tests.test_public_surface import PUBLIC

    page = hooks.api_markdown()
    headings = re.findall(r"^## `([\w.]+)`$", page, flags=re.MULTILINE)
    # The same modules as the independent walk in tests/test_public_surface.py, none private.
    assert headings == PUBLIC == hooks.public_modules()
    sections = dict(zip(headings, re.split(r"^## `[\w.]+`$", page, flags=re.MULTILINE)[1:], strict=True))
    for name in PUBLIC:
        rows = re.findall(r"^\| `(\w+)` \|", sections[name], flags=re.MULTILINE)
        assert sorted(rows) == sorted(importlib.import_module(name).__all__), name
    # Summaries are the first docstring lines, read from the objects.
    assert "| `TokenVerifier` | class | " in page
    assert "| `build_issuer` | function | The issuer `settings` describe;" in page
    assert "| `AccessToken` | class | (from `s2s.oauth`) " in page


def test_api_reference_page_is_generated_and_in_the_nav() -> None:
    page = (ROOT / "docs" / "reference" / "api.md").read_text()
    assert page.count(hooks.API_MARKER) == 1
    # Written by hand only around the marker: no module is listed outside the generated part.
    assert "## `" not in page
    assert "reference/api.md" in (ROOT / "mkdocs.yml").read_text()


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
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "s2s.verify.errors" in api
    assert "<!-- s2s:api -->" not in api
