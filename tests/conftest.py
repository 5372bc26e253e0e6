from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s2s.clock import FakeClock

REGION = "us-east-1"
TESTS = Path(__file__).resolve().parent
# Directories whose tests carry a marker of the same name (registered in pyproject.toml).
MARKED = ("e2e", "interop")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(TESTS).parts if item.path.is_relative_to(TESTS) else ()
        if parts and parts[0] in MARKED:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials and a fixed region; nothing from this machine's AWS setup (endpoints,
    profiles, config files, s2s AWS settings) leaks in, so nothing can reach real AWS."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "S2S_AWS_")) or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
    nowhere = tmp_path_factory.mktemp("no-aws-config") / "absent"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def mock_aws(aws_env: None) -> Iterator[None]:
    """In-process AWS (moto) for the test's duration: every boto3 client made meanwhile talks to it."""
    from moto import mock_aws as moto_mock_aws

    with moto_mock_aws():
        yield


@pytest.fixture
def sm(mock_aws: None) -> Any:
    """A Secrets Manager client on moto."""
    import boto3

    return boto3.client("secretsmanager", region_name=REGION)


def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, where: Path) -> None:
    """Take the credentials away (after ``aws_env``): no keys, no profile, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(where / "absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(where / "absent"))
