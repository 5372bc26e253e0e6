"""The core (keys, rotation, verifier, issuer logic, clients) imports no framework or cloud SDK."""

from __future__ import annotations

import subprocess
import sys

CORE = (
    "s2s.keys",
    "s2s.keys.filestore",
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
