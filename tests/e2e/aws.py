"""End-to-end fixtures for AWS deployments: a real ``moto_server`` on 127.0.0.1 standing in for AWS,
the ``s2s`` CLI pointed at it, and the example resource service as a uvicorn process.

Every process gets the standard AWS environment (``AWS_ENDPOINT_URL`` and fake credentials), so
each one talks HTTP to the same moto server and sees the same secrets, KMS keys and tables, the way
replicas share real AWS. Nothing here can reach real AWS: the endpoint is always the local server.
Import the fixtures into a test module (``from tests.e2e.aws import moto, aws``) to use them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import FAST_ROTATION_ENV, S2SCli
from tests.support import RunningProcess, running_process, stop_process, wait_until_ready

__all__ = [
    "AwsDeployment",
    "MotoServer",
    "ResourceService",
    "aws",
    "moto",
    "running_resource_service",
    "stop_process",
    "wait_until_ready",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
# Settings the test machine may carry that would change what the processes under test do.
_SCRUBBED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "S2S_ALG",
    "S2S_ISSUER",
    "S2S_DEBUG",
    "S2S_SIGNER",
    "S2S_STATE",
)


MotoServer = RunningProcess


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    """``moto_server -H 127.0.0.1 -p PORT`` from the venv, in its own process (its own state)."""
    moto_server = str(Path(sys.executable).parent / "moto_server")
    # moto's dashboard path answers as soon as the server is up.
    with running_process(
        lambda port: [moto_server, "-H", "127.0.0.1", "-p", str(port)],
        name="moto",
        workdir=tmp_path,
        ready_path="/moto-api/",
    ) as server:
        yield server


@dataclass(frozen=True, slots=True)
class AwsDeployment(S2SCli):
    """An s2s deployment whose key store and client registry are secrets in the moto server.

    ``env`` is the whole environment for every process of the deployment (CLI, issuers); names are
    unique per test, so nothing depends on what another test left in a server.
    """

    moto_url: str
    prefix: str

    @property
    def keystore(self) -> str:
        return self.env["S2S_KEYSTORE"]

    @property
    def clients(self) -> str:
        return self.env["S2S_CLIENTS"]

    def boto(self, service: str) -> Any:
        """A boto3 client of the test itself, talking to the same moto server."""
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client(service, endpoint_url=self.moto_url)  # type: ignore[call-overload]


@pytest.fixture
def aws(moto: MotoServer, tmp_path: Path) -> AwsDeployment:
    """Environment for a deployment on the moto server: ``S2S_KEYSTORE`` and ``S2S_CLIENTS`` are
    ``aws-sm://`` secrets (the registry reloads every second); nothing is created yet."""
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    for name in _SCRUBBED:
        env.pop(name, None)
    env.update(FAST_ROTATION_ENV)
    env.update(
        {
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "S2S_KEYSTORE": f"aws-sm://{prefix}/keys",
            "S2S_CLIENTS": f"aws-sm://{prefix}/clients?reload=1",
        }
    )
    return AwsDeployment(tmp_path, env, moto.url, prefix)


ResourceService = RunningProcess


@contextlib.contextmanager
def running_resource_service(env: dict[str, str], workdir: Path) -> Iterator[ResourceService]:
    """``uvicorn services.resource.app:app`` on a free port of 127.0.0.1 (settings from ``env``'s
    ``S2S_VERIFIER_*``), until ``/health`` answers; stopped (terminate, wait, kill) on exit."""
    uvicorn = [sys.executable, "-m", "uvicorn", "services.resource.app:app", "--no-access-log"]
    with running_process(
        lambda port: [*uvicorn, "--host", "127.0.0.1", "--port", str(port)],
        name="resource",
        workdir=workdir,
        ready_path="/health",
        env=env,
        cwd=REPO_ROOT,
    ) as service:
        yield service
