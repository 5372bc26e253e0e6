"""Fixtures for the verifier tests: keys, a token minter, a forger for hand-made tokens, and a
JWKS/discovery server behind a counting httpx.MockTransport."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, OKPKey, RSAKey

from s2s.clock import FakeClock
from s2s.keys import KeyState, LocalSigner, SigningKey, generate_key
from s2s.verify import SyncTokenVerifier, TokenVerifier, VerifierConfig

ISSUER = "https://issuer.test"
AUDIENCE = "orders-api"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"
START = 1_700_000_000.0


def b64(data: bytes | str | dict[str, Any]) -> str:
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def private_key_of(key: SigningKey) -> Any:
    assert key.private_jwk is not None
    kty = key.public_jwk["kty"]
    cls = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}[kty]
    return cls.import_key(dict(key.private_jwk)).private_key  # type: ignore[attr-defined]


def raw_sign(key: SigningKey, alg: str, signing_input: bytes) -> bytes:
    """Sign with ``key``'s private key as ``alg`` says, whatever the key's own alg is."""
    priv = private_key_of(key)
    if alg == "ES256":
        r, s = decode_dss_signature(priv.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "RS256":
        return bytes(priv.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))
    if alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return bytes(priv.sign(signing_input, pss, hashes.SHA256()))
    if alg in ("Ed25519", "EdDSA"):
        return bytes(priv.sign(signing_input))
    raise AssertionError(alg)


def forge(
    header: dict[str, Any] | str,
    claims: dict[str, Any] | str,
    *,
    key: SigningKey | None = None,
    alg: str | None = None,
    hmac_secret: bytes | None = None,
) -> str:
    """A hand-made compact JWS: any header, any payload, signed as asked (or not at all)."""
    h = b64(header) if isinstance(header, dict) else header
    p = b64(claims) if isinstance(claims, dict) else claims
    signing_input = f"{h}.{p}".encode()
    if hmac_secret is not None:
        sig = hmac.new(hmac_secret, signing_input, hashlib.sha256).digest()
    elif key is not None:
        sig = raw_sign(key, alg or key.alg, signing_input)
    else:
        sig = b""
    return f"{h}.{p}.{b64(sig)}"


@dataclass
class JwksServer:
    """Serves JWKS and discovery documents over a MockTransport; counts every request."""

    routes: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    down: bool = False

    def serve_keys(
        self, url: str, keys: list[SigningKey] | list[dict[str, Any]], cache_control: str | None = None
    ) -> None:
        entries = [k.public_jwk_entry() if isinstance(k, SigningKey) else k for k in keys]
        headers = {"Cache-Control": cache_control} if cache_control else {}
        self.routes[url] = (200, {"keys": entries}, headers)

    def serve(self, url: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.routes[url] = (status, body, headers or {})

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests[url] += 1
        if self.down:
            raise httpx.ConnectError("down", request=request)
        if url not in self.routes:
            return httpx.Response(404)
        status, body, headers = self.routes[url]
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

    def sync_client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


# RSA generation is slow: one of each per session.
@pytest.fixture(scope="session")
def keyring() -> dict[str, SigningKey]:
    return {
        "es": generate_key("ES256", now=START, state=KeyState.CURRENT),
        "es2": generate_key("ES256", now=START, state=KeyState.NEXT),
        "es_other": generate_key("ES256", now=START, state=KeyState.CURRENT),
        "rs": generate_key("RS256", now=START, state=KeyState.CURRENT),
        "ps": generate_key("PS256", now=START, state=KeyState.CURRENT),
        "ed": generate_key("Ed25519", now=START, state=KeyState.CURRENT),
    }


@pytest.fixture
def key(keyring: dict[str, SigningKey]) -> SigningKey:
    return keyring["es"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def server(keyring: dict[str, SigningKey]) -> JwksServer:
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [keyring["es"], keyring["rs"], keyring["ps"], keyring["ed"]])
    return srv


def base_claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "billing-service",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "token-1",
        "client_id": "billing-service",
        "scope": "orders:read orders:write",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


Mint = Callable[..., str]


@pytest.fixture
def mint(key: SigningKey, clock: FakeClock) -> Mint:
    signer = LocalSigner()

    def mint(*, signing_key: SigningKey | None = None, typ: str | None = "at+jwt", **claims: Any) -> str:
        header = {"typ": typ} if typ is not None else {}
        return signer.sign(signing_key or key, header, base_claims(clock, **claims))

    return mint


@pytest.fixture
def config() -> VerifierConfig:
    return VerifierConfig.for_s2s(ISSUER, AUDIENCE)


@pytest.fixture
def verifier(config: VerifierConfig, server: JwksServer, clock: FakeClock) -> Iterator[TokenVerifier]:
    yield TokenVerifier(config, http_client=server.async_client(), clock=clock)


@pytest.fixture
def sync_verifier(
    config: VerifierConfig, server: JwksServer, clock: FakeClock
) -> Iterator[SyncTokenVerifier]:
    v = SyncTokenVerifier(config, http_client=server.sync_client(), clock=clock)
    yield v
    v.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
