"""One error tree per package: unique names across packages, each drawn in its errors module."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections import defaultdict

import pytest

import s2s
from s2s.errors import S2SError

# Packages whose errors module draws its tree (s2s.verify and s2s.keys are the JOSE branch's).
DRAWN = ("s2s.issuer", "s2s.client", "s2s.entra", "s2s.secrets", "s2s.aws", "s2s.cli")


def public_errors() -> dict[str, set[str]]:
    """Every public S2SError subclass, by class name -> the modules defining one of that name."""
    found: dict[str, set[str]] = defaultdict(set)
    for info in pkgutil.walk_packages(s2s.__path__, "s2s."):
        if info.name.startswith("s2s.litestar") or "._" in info.name:
            continue  # adapters need their extras; private modules re-export through packages
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, S2SError):
                found[obj.__name__].add(obj.__module__)
    return found


def test_no_two_public_errors_share_a_name() -> None:
    clashes = {name: sorted(modules) for name, modules in public_errors().items() if len(modules) > 1}
    assert clashes == {}


@pytest.mark.parametrize("package", DRAWN)
def test_each_errors_module_draws_its_tree(package: str) -> None:
    module = importlib.import_module(f"{package}.errors")
    doc = module.__doc__ or ""
    assert "S2SError" in doc and "└── " in doc
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, S2SError):
            assert name in doc, f"{package}.errors: {name} is not in the tree"


def test_the_issuer_error_for_a_bad_request_is_not_the_verifiers() -> None:
    from s2s.issuer import InvalidTokenRequest
    from s2s.verify import InvalidRequest

    assert InvalidTokenRequest is not InvalidRequest and InvalidTokenRequest.error == InvalidRequest.error
