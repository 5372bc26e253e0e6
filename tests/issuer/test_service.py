"""``services/issuer/app.py`` is importable from the repository root, configured by S2S_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_service_app_builds_from_env(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "S2S_KEYSTORE": f"file://{tmp_path / 'keys'}",
        "S2S_CLIENTS": f"file://{tmp_path / 'clients.json'}",
        "S2S_ISSUER": "https://issuer.example",
    }
    code = (
        "from services.issuer.app import app;"
        "rt = app.state.s2s_issuer;"
        "print(type(app).__name__, rt.settings.issuer, rt.keys.store.url)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    name, issuer, store = result.stdout.split()
    assert name == "Litestar" and issuer == "https://issuer.example" and str(tmp_path / "keys") in store
    # Building the app touches no store: keys are created at startup (lifespan), not at import.
    assert not (tmp_path / "keys" / "keyset.json").exists()
