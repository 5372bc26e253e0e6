"""Independent verifiers of our issuer: npm ``jose`` (Node) and PyJWT's ``PyJWKClient`` verify tokens
fetched from a running ``s2s serve``, before and after key rotations done with ``s2s keys rotate``.

Each verifier holds one remote key set for the whole test, as a resource service would: cached
for ten minutes, refetched on an unknown kid. The first rotation promotes a key that was published
(as ``next``) before either verifier fetched, so no refetch is needed; the second promotes a key
created by the first rotation, which neither has seen: each must refetch exactly once.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.conftest import (
    AUDIENCE,
    CLIENT_ID,
    POLL_INTERVAL,
    PUBLISH_LEAD,
    REFETCH_COOLDOWN,
    SCOPE,
    Deployment,
    RunningIssuer,
)
from tests.interop.conftest import HERE, NODE, node_package_version, node_version, require_node_modules

__all__: list[str] = []

Verify = Callable[[str, jwt.PyJWKClient], dict[str, Any]]


class CountingJWKClient(jwt.PyJWKClient):
    """PyJWKClient that counts its JWKS fetches."""

    fetches = 0

    def fetch_data(self) -> Any:
        self.fetches += 1
        return super().fetch_data()


class JoseVerifier:
    """``node verify_jose.mjs``: one token per line in, one JSON verdict per line out."""

    def __init__(self, issuer: str, audience: str, cooldown: float, log: Path) -> None:
        require_node_modules("jose")
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [NODE, str(HERE / "verify_jose.mjs"), issuer, audience, str(int(cooldown * 1000))],
                cwd=HERE,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.hello = self._read()
        assert "fatal" not in self.hello, f"jose {node_package_version('jose')}: {self.hello['fatal']}"

    def _read(self, timeout: float = 20) -> dict[str, Any]:
        assert self.proc.stdout is not None
        if not self._selector.select(timeout):
            raise AssertionError(
                f"verify_jose.mjs gave no answer in {timeout}s: {self.log.read_text()[-2000:]}"
            )
        line = self.proc.stdout.readline()
        assert line, f"verify_jose.mjs exited with {self.proc.poll()}: {self.log.read_text()[-2000:]}"
        result: dict[str, Any] = json.loads(line)
        return result

    def verify(self, token: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(token.encode() + b"\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self._selector.close()
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def jose_verifier(issuer: RunningIssuer, tmp_path: Path) -> Iterator[JoseVerifier]:
    verifier = JoseVerifier(issuer.url, AUDIENCE, REFETCH_COOLDOWN, tmp_path / "jose.log")
    try:
        yield verifier
    finally:
        verifier.close()


def fetch_token(issuer: RunningIssuer, deployment: Deployment) -> str:
    response = httpx.post(
        issuer.token_endpoint,
        data={"grant_type": "client_credentials", "audience": AUDIENCE, "scope": SCOPE},
        auth=(deployment.client_id, deployment.client_secret),
        timeout=10,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def rotate(deployment: Deployment, issuer: RunningIssuer) -> tuple[str, str]:
    """``s2s keys rotate`` once the next key has been published long enough; returns (promoted
    kid, new next kid) after the running server has started signing with the promoted key."""
    (next_key,) = [k for k in deployment.store_keys().values() if k["state"] == "next"]
    delay = next_key["created_at"] + PUBLISH_LEAD + 0.05 - time.time()
    if delay > 0:
        time.sleep(delay)
    changes = deployment.cli_json("keys", "rotate")["changes"]
    (promoted,) = [c["kid"] for c in changes if c["from"] == "next" and c["to"] == "current"]
    (created,) = [c["kid"] for c in changes if c["from"] is None and c["to"] == "next"]
    deadline = time.monotonic() + POLL_INTERVAL + 5
    while jwt.get_unverified_header(fetch_token(issuer, deployment))["kid"] != promoted:
        assert time.monotonic() < deadline, f"s2s serve did not start signing with {promoted}"
        time.sleep(0.05)
    return promoted, created


def tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    claims = jwt.utils.base64url_decode(payload)
    forged = claims.replace(CLIENT_ID.encode(), b"x" * len(CLIENT_ID))
    assert forged != claims
    return ".".join([head, jwt.utils.base64url_encode(forged).decode(), signature])


def test_jose_and_pyjwt_verify_tokens_across_rotations(
    deployment: Deployment, issuer: RunningIssuer, jose_verifier: JoseVerifier, verify_token: Verify
) -> None:
    """One ``s2s serve`` for both checks: starting it (``keys init``, ``clients add``, ``serve``
    as processes) costs several seconds on these machines."""
    ran = (
        f"jose {jose_verifier.hello['jose']} on Node {node_version()} and PyJWT {jwt.__version__} "
        f"against s2s serve"
    )
    print(ran)
    # jose read the RFC 8414 metadata (and openid-configuration) and checked issuer, endpoints and
    # the published keys before answering; what it found must be what the issuer serves.
    hello = jose_verifier.hello
    metadata = hello["metadata"]
    assert hello["metadata_url"] == f"{issuer.url}/.well-known/oauth-authorization-server", ran
    assert metadata["issuer"] == issuer.url, ran
    assert metadata["token_endpoint"] == issuer.token_endpoint, ran
    assert metadata["jwks_uri"] == issuer.jwks_uri, ran
    assert "ES256" in metadata["access_token_signing_alg_values_supported"], ran
    assert sorted(hello["published_kids"]) == sorted(issuer.jwks_kids()), ran
    # The check can fail: RFC 8414 §3.3 wants the issuer identical, and a trailing slash is not.
    mismatch = subprocess.run(
        [NODE, str(HERE / "verify_jose.mjs"), f"{issuer.url}/", AUDIENCE, "200"],
        cwd=HERE,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert mismatch.returncode == 1, f"{ran}: {mismatch.stdout!r} {mismatch.stderr!r}"
    assert "metadata issuer" in json.loads(mismatch.stdout)["fatal"], ran
    pyjwt = CountingJWKClient(issuer.jwks_uri, lifespan=600, cooldown_duration=REFETCH_COOLDOWN)

    def both(token: str, fetches: int) -> None:
        kid = jwt.get_unverified_header(token)["kid"]
        verdict = jose_verifier.verify(token)
        assert verdict["ok"], f"{ran}: jose refused a token of {kid}: {verdict}"
        assert verdict["header"]["typ"] == "at+jwt" and verdict["header"]["kid"] == kid, verdict
        assert verdict["payload"]["client_id"] == CLIENT_ID and verdict["payload"]["scope"] == SCOPE
        claims = verify_token(token, pyjwt)
        assert claims == verdict["payload"], f"{ran}: the two verifiers read different claims"
        assert (verdict["jwks_fetches"], pyjwt.fetches) == (fetches, fetches), (
            f"{ran}: JWKS fetches (jose, PyJWT) = {verdict['jwks_fetches']}, {pyjwt.fetches}; "
            f"expected {fetches}"
        )

    first = fetch_token(issuer, deployment)
    both(first, 1)

    promoted, created = rotate(deployment, issuer)
    second = fetch_token(issuer, deployment)
    assert jwt.get_unverified_header(second)["kid"] == promoted
    both(second, 1)  # published as `next` before the verifiers fetched: no refetch needed

    promoted, _ = rotate(deployment, issuer)
    assert promoted == created
    third = fetch_token(issuer, deployment)
    assert jwt.get_unverified_header(third)["kid"] == promoted
    both(third, 2)  # unknown to both: one refetch each

    # Tokens of the previous keys stay valid while those keys are published.
    both(first, 2)
    both(second, 2)

    forged = tampered(third)
    verdict = jose_verifier.verify(forged)
    assert not verdict["ok"] and verdict["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", (
        f"{ran}: {verdict}"
    )
    with pytest.raises(jwt.InvalidSignatureError):
        verify_token(forged, pyjwt)
