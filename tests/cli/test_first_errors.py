"""The errors a newcomer meets first: one ``s2s: error:`` line saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2s.cli import main
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("S2S_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_line(args: list[str], code: int) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("s2s: error: "), result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("args", "created_by"),
    [
        (["keys", "list"], "s2s keys init --store file://keys"),
        (["clients", "list", "--json"], "s2s clients add CLIENT_ID --audience AUDIENCE --registry file://"),
    ],
)
def test_list_in_a_directory_without_a_store_names_the_relative_path(
    empty_dir: Path, args: list[str], created_by: str
) -> None:
    err = _one_line(args, 1)
    assert f"relative to the current directory {empty_dir}" in err and created_by in err
    assert not (empty_dir / "keys").exists()  # looking created nothing


def test_an_absolute_store_path_is_not_called_relative(empty_dir: Path) -> None:
    err = _one_line(["clients", "list", "--registry", f"file://{empty_dir}/reg.json"], 1)
    assert f"no client registry at file://{empty_dir}/reg.json;" in err and "relative" not in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["kyes", "list"], "No such command 'kyes'. Did you mean 'keys'?"),
        (["keys", "list", "--bogus"], "No such option '--bogus'"),
        (["serve", "--port", "0"], "Invalid value for '--port'"),
        (["token"], "Missing option '--client-id'"),
    ],
)
def test_usage_errors_are_one_line_with_clicks_suggestion(
    empty_dir: Path, args: list[str], expected: str
) -> None:
    err = _one_line(args, 2)
    assert expected in err and "--help` for usage" in err


def test_help_and_version_still_print_to_stdout(empty_dir: Path) -> None:
    for args in (["--help"], ["keys", "--help"], ["--version"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and result.stdout and result.stderr == ""


def _uvicorn(app: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", app, "--port", str(free_port())],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_service_without_settings_ends_with_one_line_under_uvicorn(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    got = _uvicorn("services.resource.app:app", ROOT, env)
    assert got.returncode == 1
    assert got.stderr == "s2s: error: missing settings: S2S_VERIFIER_ISSUER, S2S_VERIFIER_AUDIENCE\n"


def test_a_plugin_built_at_import_without_settings_ends_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "userapp.py").write_text(
        "from litestar import Litestar\n"
        "from s2s.litestar import S2SAuthPlugin\n"
        "from s2s.verify import VerifierConfig\n"
        "app = Litestar([], plugins=[S2SAuthPlugin(VerifierConfig.from_env())])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    env["S2S_VERIFIER_AUDIENCE"] = "https://api.example.internal"
    got = _uvicorn("userapp:app", tmp_path, env)
    assert got.returncode == 1
    assert got.stderr == "s2s: error: missing setting: S2S_VERIFIER_ISSUER\n"
    # S2S_DEBUG=1 keeps the traceback for whoever asks for it.
    got = _uvicorn("userapp:app", tmp_path, {**env, "S2S_DEBUG": "1"})
    assert "Traceback" in got.stderr and "S2S_VERIFIER_ISSUER" in got.stderr
