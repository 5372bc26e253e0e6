"""Credentials: key loading (JWK, PEM, file, Secrets Manager), assertions, and nothing leaking."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey
from moto import mock_aws

from s2s.client import AsyncTokenClient, ClientSecret, PrivateKeyJWT, TokenClient, TokenClientSettings
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import AssertionVerifier, Client, InMemoryReplayCache
from s2s.secrets import SecretNotFound, SecretsManagerSource
from tests.client.conftest import AUDIENCE, Counting
from tests.client.helpers import SECRET, TOKEN_URL, FakeTokenEndpoint

ISSUER_TOKEN_URL = "https://issuer.test/oauth2/token"


@pytest.fixture
def sm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def private_pem(key: Any, password: bytes | None = None) -> bytes:
    encryption: Any = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))


KEYS = {
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "Ed25519": ed25519.Ed25519PrivateKey.generate,
}


@pytest.mark.parametrize("alg", list(KEYS))
def test_assertions_verify_with_the_issuers_own_checker(alg: str, clock: FakeClock) -> None:
    credential = PrivateKeyJWT(private_pem(KEYS[alg]()))
    assert credential.alg == alg
    client = Client(client_id="pkj", audiences=(AUDIENCE,), jwks=tuple(credential.jwks()["keys"]))
    verifier = AssertionVerifier((ISSUER_TOKEN_URL,), InMemoryReplayCache(clock), clock=clock)
    form: dict[str, str] = {}
    headers: dict[str, str] = {}
    sensitive = credential.apply("pkj", ISSUER_TOKEN_URL, clock.now(), form, headers)
    claims = verifier.verify(form["client_assertion"], client)
    assert claims["iss"] == claims["sub"] == "pkj" and claims["aud"] == ISSUER_TOKEN_URL
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert sensitive == (form["client_assertion"],) and headers == {}
    # each assertion is new: a replay of the first is refused, a second one is accepted
    again: dict[str, str] = {}
    credential.apply("pkj", ISSUER_TOKEN_URL, clock.now(), again, {})
    assert again["client_assertion"] != form["client_assertion"]
    verifier.verify(again["client_assertion"], client)


def test_jwk_inputs_and_kid(tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256", private=True)
    private = dict(key.as_dict(private=True))
    private["kid"] = "my-key"
    assert PrivateKeyJWT(private).kid == "my-key"
    assert PrivateKeyJWT(json.dumps(private)).kid == "my-key"
    assert PrivateKeyJWT({"keys": [private]}).kid == "my-key"
    assert PrivateKeyJWT(private, kid="override").kid == "override"
    private.pop("kid")
    assert PrivateKeyJWT(private).kid == key.thumbprint()
    path = tmp_path / "key.jwk"
    path.write_text(json.dumps(private))
    assert PrivateKeyJWT.load(str(path)).kid == key.thumbprint()
    assert PrivateKeyJWT.load(path).kid == key.thumbprint()
    rsa_key = RSAKey.generate_key(2048, private=True)
    assert PrivateKeyJWT(rsa_key.as_dict(private=True), alg="PS256").alg == "PS256"
    assert PrivateKeyJWT(OKPKey.generate_key("Ed25519", private=True).as_dict(private=True)).alg == "Ed25519"


def test_encrypted_pem_needs_its_password() -> None:
    pem = private_pem(ec.generate_private_key(ec.SECP256R1()), b"pw")
    assert PrivateKeyJWT(pem, password="pw").alg == "ES256"
    with pytest.raises(ConfigError):
        PrivateKeyJWT(pem)
    with pytest.raises(ConfigError):
        PrivateKeyJWT(pem, password="wrong")


def test_bad_keys_are_refused_without_quoting_them(tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256", private=True)
    private = key.as_dict(private=True)
    secret_d = str(private["d"])
    cases: list[Any] = [
        key.as_dict(private=False),  # public only
        {"kty": "oct", "k": secret_d, "d": secret_d},
        {**private, "x": "AAAA"},  # does not parse
        json.dumps(private)[:-5],
        "-----BEGIN PRIVATE KEY-----\n" + secret_d + "\n-----END PRIVATE KEY-----\n",
        "just text " + secret_d,
        {"keys": [private, private]},
    ]
    for case in cases:
        with pytest.raises(ConfigError) as info:
            PrivateKeyJWT(case)
        assert secret_d not in str(info.value)
    with pytest.raises(ConfigError, match="alg"):
        PrivateKeyJWT(private, alg="RS256")
    with pytest.raises(ConfigError) as info:
        PrivateKeyJWT.from_file(tmp_path / "missing.pem")
    assert "missing.pem" in str(info.value)
    # Key material in a form load() does not recognise must not be echoed as a "missing file".
    der = base64.b64encode(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    ).decode()
    for text in (der, der[:60]):
        with pytest.raises(ConfigError) as info:
            PrivateKeyJWT.load(text)
        assert text not in str(info.value) and text[:16] not in str(info.value)
    credential = PrivateKeyJWT(private)
    assert secret_d not in repr(credential) and "d" not in credential.public_jwk


def test_secrets_stay_out_of_reprs() -> None:
    secret = ClientSecret(SECRET)
    assert SECRET not in repr(secret)
    settings = TokenClientSettings(client_id="svc", token_endpoint=TOKEN_URL, client_secret=SECRET)
    assert SECRET not in repr(settings)
    client = TokenClient.from_settings(settings, transport=httpx.MockTransport(FakeTokenEndpoint()))
    assert SECRET not in repr(client) and "client_secret_basic" in repr(client)


def test_settings_from_env(tmp_path: Path) -> None:
    key_file = tmp_path / "k.pem"
    key_file.write_bytes(private_pem(ec.generate_private_key(ec.SECP256R1())))
    env = {
        "APP_CLIENT_ID": "svc",
        "APP_ISSUER": "https://issuer.test",
        "APP_CLIENT_PRIVATE_KEY": str(key_file),
        "APP_TOKEN_TIMEOUT": "3",
    }
    settings = TokenClientSettings.from_env("APP_", env)
    assert settings.issuer == "https://issuer.test" and settings.token_endpoint is None
    assert settings.timeout == 3
    client = AsyncTokenClient.from_settings(settings)
    assert repr(client).endswith("private_key_jwt)")
    with pytest.raises(ConfigError):
        TokenClientSettings.from_env("APP_", {"APP_CLIENT_ID": "svc", "APP_ISSUER": "https://x"})
    with pytest.raises(ConfigError):
        TokenClientSettings.from_env("APP_", {**env, "APP_TOKEN_TIMEOUT": "soon"})


def test_client_secret_from_secrets_manager(sm: Any, clock: FakeClock) -> None:
    sm.create_secret(Name="svc/creds", SecretString=json.dumps({"client_secret": SECRET}))
    endpoint = FakeTokenEndpoint()
    client = TokenClient(
        TOKEN_URL,
        client_id="svc",
        client_secret="aws-sm://svc/creds#client_secret",
        transport=httpx.MockTransport(endpoint),
        clock=clock,
    )
    client.get_token(AUDIENCE)
    assert endpoint.requests[0].headers["authorization"] == httpx.BasicAuth("svc", SECRET)._auth_header
    with pytest.raises(SecretNotFound) as info:
        TokenClient(TOKEN_URL, client_id="svc", client_secret="aws-sm://svc/missing")
    assert "aws-sm://svc/missing" in str(info.value)


@pytest.mark.anyio
async def test_private_key_jwt_from_secrets_manager_against_the_issuer(
    sm: Any, counting: Counting, pkj: Any
) -> None:
    pem = pkj.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    sm.create_secret(Name="pkj/key", SecretString=json.dumps({"pem": pem.decode()}))
    source = SecretsManagerSource(sm)
    client = AsyncTokenClient(
        ISSUER_TOKEN_URL,
        client_id="pkj",
        private_key="aws-sm://pkj/key#pem",
        secret_source=source,
        transport=counting,
    )
    token = await client.get_token(AUDIENCE)
    assert jwt.decode(token.token, options={"verify_signature": False})["client_id"] == "pkj"
    await client.aclose()
