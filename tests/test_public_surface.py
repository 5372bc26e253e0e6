"""Each package re-exports what a user needs; one AccessToken and one ClientSecret everywhere."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import s2s


def _public_modules() -> list[str]:
    # Independent of docs/hooks.py on purpose: the page's generator must agree with this walk.
    found = ["s2s"]
    for info in pkgutil.walk_packages(s2s.__path__, "s2s."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


PUBLIC = _public_modules()


def test_only_the_designed_modules_are_public() -> None:
    # Every other module is an implementation detail with a leading underscore (issue 12, item 9);
    # a new public module is a decision: add it here and it appears in docs/reference/api.md.
    assert (
        sorted(
            ["s2s", "s2s.clock", "s2s.errors", "s2s.http", "s2s.oauth", "s2s.testing", "s2s.cli"]
            + [f"s2s.{p}" for p in ("aws", "client", "entra", "issuer", "jose", "keys", "secrets", "verify")]
            + [f"s2s.{p}.errors" for p in ("aws", "cli", "client", "entra", "issuer", "jose", "keys")]
            + ["s2s.secrets.errors", "s2s.verify.errors"]
            + ["s2s.litestar", "s2s.litestar.entra", "s2s.litestar.issuer"]
            # The seam and its subscribers (issue 14): prometheus_client, OpenTelemetry, a Litestar route.
            + ["s2s.observe", "s2s.observe.litestar", "s2s.observe.otel", "s2s.observe.prometheus"]
        )
        == PUBLIC
    )


@pytest.mark.parametrize("name", PUBLIC)
def test_every_exported_name_exists_and_no_private_name_is_exported(name: str) -> None:
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    missing = [exported for exported in module.__all__ if not hasattr(module, exported)]
    assert missing == []
    assert not any(e.startswith("_") and e != "__version__" for e in module.__all__)
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("name", [n for n in PUBLIC if n.endswith(".errors")])
def test_each_error_is_reexported_by_its_package(name: str) -> None:
    package = importlib.import_module(name.removesuffix(".errors"))
    errors = importlib.import_module(name)
    if name == "s2s.cli.errors":
        return  # the CLI raises these itself; users of the command see one line, not a class
    classes = [e for e in errors.__all__ if isinstance(getattr(errors, e), type)]
    assert [e for e in classes if getattr(package, e, None) is not getattr(errors, e)] == []


def test_one_access_token_and_one_client_secret() -> None:
    import s2s.client
    import s2s.entra
    import s2s.oauth

    assert s2s.client.AccessToken is s2s.entra.AccessToken is s2s.oauth.AccessToken
    assert s2s.client.ClientSecret is s2s.entra.ClientSecret


def test_the_top_package_imports_no_subpackage() -> None:
    code = "import sys, s2s; print(sorted(m for m in sys.modules if m.startswith('s2s.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['s2s.errors']"


def test_issuer_users_need_only_the_package() -> None:
    from s2s import issuer

    needed = ("build_issuer", "IssuerSettings", "Client", "new_client", "open_client_registry")
    needed += ("TokenEndpoint", "OAuthError", "InvalidTokenRequest", "StateUnavailable", "KeyManager")
    assert [name for name in needed if not hasattr(issuer, name)] == []
