"""End-to-end fixtures: a real ``s2s serve`` process on 127.0.0.1 and the ``s2s`` CLI as subprocesses.

Timings are shortened so rotations complete in seconds; they still satisfy the policy's rule
``publish_lead >= poll_interval + jwks_max_age + refetch_cooldown`` (1.5 >= 0.2 + 1 + 0.2).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.support import RunningIssuer, running_issuer, s2s_executable

__all__ = ["RunningIssuer", "running_issuer", "s2s_executable"]  # also imported by other suites

__all__ = [
    "AUDIENCE",
    "CLIENT_ID",
    "SCOPE",
    "Deployment",
    "RunningIssuer",
    "running_issuer",
    "s2s_executable",
]

AUDIENCE = "https://orders.e2e.internal"
CLIENT_ID = "loadgen"
SCOPE = "orders:read"

POLL_INTERVAL = 0.2
JWKS_MAX_AGE = 1
REFETCH_COOLDOWN = 0.2
PUBLISH_LEAD = 1.5
TOKEN_TTL = 30

FAST_ROTATION_ENV = {
    "S2S_POLL_INTERVAL": str(POLL_INTERVAL),
    "S2S_JWKS_MAX_AGE": str(JWKS_MAX_AGE),
    "S2S_REFETCH_COOLDOWN": str(REFETCH_COOLDOWN),
    "S2S_PUBLISH_LEAD": str(PUBLISH_LEAD),
    "S2S_TOKEN_TTL": str(TOKEN_TTL),
    "S2S_MAX_TOKEN_TTL": str(TOKEN_TTL),
    "S2S_LEEWAY": "5",
    # Only the test's `s2s keys rotate` rotates; the server's own schedule still runs (and must not
    # lose the CLI's keys), it just has nothing to promote within the test.
    "S2S_ROTATE_EVERY": "3600",
    # The load loop is one client hammering the endpoint; the per-client limit is tested elsewhere.
    "S2S_RATE_LIMIT": "100000",
    "S2S_RATE_BURST": "100000",
}


@dataclass(frozen=True, slots=True)
class S2SCli:
    """A deployment's directory and environment, and the real ``s2s`` command run against it."""

    root: Path
    env: dict[str, str]

    def cli(
        self, *args: str, timeout: float = 60, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ``s2s`` executable (a separate process) against this deployment."""
        return subprocess.run(
            [str(s2s_executable()), *args],
            cwd=self.root,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, f"s2s {' '.join(args)} failed: {result.stderr.strip()}"
        return json.loads(result.stdout)

    def store_keys(self) -> dict[str, dict[str, Any]]:
        """kid -> public record of every key in the store, as ``s2s keys list --json`` reports it."""
        return {key["kid"]: key for key in self.cli_json("keys", "list")["keys"]}


@dataclass(frozen=True, slots=True)
class Deployment(S2SCli):
    """A temporary key store and client registry, and the environment that points at them."""

    client_id: str
    client_secret: str


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    """``s2s keys init`` + ``s2s clients add`` (real subprocesses) in a temporary directory."""
    keys = tmp_path / "keys"
    env = {
        **os.environ,
        **FAST_ROTATION_ENV,
        "S2S_KEYSTORE": f"file://{keys}",
        "S2S_CLIENTS": f"file://{keys / 'clients.json'}",
    }
    for name in ("S2S_ALG", "S2S_ISSUER", "S2S_DEBUG"):
        env.pop(name, None)
    bare = Deployment(tmp_path, env, CLIENT_ID, "")
    bare.cli_json("keys", "init")
    added = bare.cli_json("clients", "add", CLIENT_ID, "--audience", AUDIENCE, "--scope", SCOPE)
    return Deployment(tmp_path, env, CLIENT_ID, added["client_secret"])


@pytest.fixture
def issuer(deployment: Deployment) -> Iterator[RunningIssuer]:
    """``s2s serve`` for :func:`deployment`; stopped (terminate, wait, kill) after the test."""
    with running_issuer(deployment.env, deployment.root) as running:
        yield running


@pytest.fixture
def verify_token(issuer: RunningIssuer) -> Callable[[str, jwt.PyJWKClient], dict[str, Any]]:
    """Verify a token with PyJWT (an independent implementation) against the served JWKS."""

    def verify(token: str, keys: jwt.PyJWKClient) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        assert header.get("typ") == "at+jwt", header
        signing_key = keys.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key.key,
            algorithms=["ES256"],
            audience=AUDIENCE,
            issuer=issuer.url,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
        assert claims["client_id"] == CLIENT_ID and claims["scope"] == SCOPE, claims
        return claims

    return verify


def jwk_client(issuer: RunningIssuer) -> jwt.PyJWKClient:
    """A PyJWKClient configured like a well-behaved verifier of this issuer: it caches the JWKS for
    the served max-age and refetches on an unknown kid after the refetch cooldown."""
    return jwt.PyJWKClient(issuer.jwks_uri, lifespan=JWKS_MAX_AGE, cooldown_duration=REFETCH_COOLDOWN)


@pytest.fixture
def new_jwk_client(issuer: RunningIssuer) -> Callable[[], jwt.PyJWKClient]:
    return lambda: jwk_client(issuer)
