"""The core (keys, rotation, verifier, issuer logic, clients) imports no framework or cloud SDK."""

from __future__ import annotations

import subprocess
import sys

CORE = (
    "s2s.keys",
    "s2s.keys._filestore",
    "s2s.issuer",
    "s2s.verify",
    "s2s.client",
    "s2s.secrets",
    "s2s.entra",
)
ADAPTER_ONLY = ("litestar", "boto3", "botocore", "msal")


def test_core_modules_import_no_adapter_dependency() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {CORE!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in {ADAPTER_ONLY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"core modules pulled in {out.strip()}"


def _imported_after(setup: str, modules: tuple[str, ...], prefix: str) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"{setup}\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m == {prefix!r} or m.startswith({prefix + '.'!r})))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return list(eval(run.stdout))


def test_caller_packages_import_without_fcntl() -> None:
    # What Windows does: fcntl does not exist. A caller-only service imports s2s.client or
    # s2s.entra (and the secrets they resolve); none of it may need fcntl at import time.
    blocked = "sys.modules['fcntl'] = None"
    assert _imported_after(blocked, ("s2s.client", "s2s.entra", "s2s.secrets", "s2s.oauth"), "s2s")


def test_the_token_client_imports_no_issuer_module() -> None:
    assert _imported_after("", ("s2s.client", "s2s.client._credentials"), "s2s.issuer") == []


def test_jws_lives_in_s2s_jose_only() -> None:
    # One JOSE core (issue 12): nothing in s2s signs, verifies or loads keys through joserfc.
    everything = (*CORE, "s2s.keys._kms", "s2s.issuer._assertion", "s2s.client._credentials", "s2s.litestar")
    assert _imported_after("", everything, "joserfc") == []
