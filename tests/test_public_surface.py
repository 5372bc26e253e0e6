"""Each package re-exports what a user needs; one AccessToken and one ClientSecret everywhere."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ("s2s", "s2s.client", "s2s.issuer", "s2s.keys", "s2s.secrets", "s2s.aws", "s2s.entra", "s2s.oauth")


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_exists_and_no_private_module_is_exported(name: str) -> None:
    package = importlib.import_module(name)
    missing = [exported for exported in package.__all__ if not hasattr(package, exported)]
    assert missing == []
    assert not any(e.startswith("_") and e != "__version__" for e in package.__all__)


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
