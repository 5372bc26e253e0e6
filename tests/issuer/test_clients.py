"""Client records, secret hashing and the file registry."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import (
    Client,
    FileClientRegistry,
    SecretVerifier,
    hash_secret,
    new_client,
    open_client_registry,
    verify_secret,
)
from s2s.issuer._secret_hash import hash_secret_scrypt, is_legacy_hash, secret_entropy_bits
from tests.issuer.helpers import LEGACY_HASH, SECRET, SECRET_HASH


def test_hash_is_fast_sha256_and_verifies() -> None:
    assert SECRET_HASH.startswith("sha256$")
    assert SECRET not in SECRET_HASH
    assert verify_secret(SECRET, SECRET_HASH)
    assert not verify_secret(SECRET + "x", SECRET_HASH)
    assert not verify_secret("", SECRET_HASH)
    _, secret = new_client("svc-2", audiences=["https://a"])
    assert secret is not None and hash_secret(secret).startswith("sha256$")


def test_legacy_scrypt_hashes_still_verify() -> None:
    assert LEGACY_HASH.startswith("scrypt$ln=15,r=8,p=1$") and is_legacy_hash(LEGACY_HASH)
    assert verify_secret(SECRET, LEGACY_HASH) and not verify_secret(SECRET + "x", LEGACY_HASH)
    assert not is_legacy_hash(SECRET_HASH)


@pytest.mark.parametrize(
    "weak",
    ["", "password", "correct-horse-battery", "a" * 60, "0123456789abcdef0123456789abcde", "Ab1!" * 8],
)
def test_secrets_below_128_bits_are_refused(weak: str) -> None:
    assert secret_entropy_bits(weak) < 128
    with pytest.raises(ConfigError, match="128 bits"):
        hash_secret(weak)


def test_random_secrets_of_128_bits_or_more_are_accepted() -> None:
    import secrets

    for secret in (secrets.token_urlsafe(20), secrets.token_hex(32), SECRET):
        assert verify_secret(secret, hash_secret(secret))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain",
        "scrypt$ln=30,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,
        "bcrypt$x$y$z",
        "scrypt$ln=x$a$b",
        "sha256$short",
        "sha256$!!",
    ],
)
def test_malformed_or_abusive_hashes_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        verify_secret(SECRET, bad)


def test_new_client_returns_secret_once_and_stores_hash() -> None:
    client, secret = new_client("svc-1", audiences=["https://a"], scopes=["x"])
    assert secret is not None and len(secret) >= 43
    assert client.secret_hash is not None and verify_secret(secret, client.secret_hash)
    assert secret not in repr(client) and client.secret_hash not in repr(client)
    doc = json.dumps(client.to_document())
    assert secret not in doc
    assert "secret_hash" not in client.to_public_dict()


def test_private_key_jwt_client_refuses_private_members() -> None:
    key = ECKey.generate_key("P-256", private=True)
    private = key.as_dict(private=True)
    with pytest.raises(ConfigError) as info:
        new_client("pkj", audiences=["https://a"], jwks={"keys": [private]})
    assert str(private["d"]) not in str(info.value)
    client, secret = new_client("pkj", audiences=["https://a"], jwks={"keys": [key.as_dict(private=False)]})
    assert secret is None and client.auth_method == "private_key_jwt"
    assert client.jwks[0]["kid"] == key.thumbprint()


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "c2VjcmV0"},
        RSAKey.generate_key(1024, private=False).as_dict(),
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {**ECKey.generate_key("P-256", private=False).as_dict(), "alg": "HS256"},
        {**ECKey.generate_key("P-256", private=False).as_dict(), "use": "enc"},
    ],
    ids=["symmetric", "rsa-1024", "bad-point", "hs-alg", "enc-use"],
)
def test_client_keys_must_be_usable_asymmetric_signing_keys(jwk: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        new_client("pkj", audiences=["https://a"], jwks={"keys": [jwk]})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_id": "bad id", "audiences": ("a",), "secret_hash": SECRET_HASH},
        {"client_id": "c", "audiences": (), "secret_hash": SECRET_HASH},
        {"client_id": "c", "audiences": ("a",)},
        {"client_id": "c", "audiences": ("a",), "scopes": ('bad"scope',), "secret_hash": SECRET_HASH},
        {"client_id": "c", "audiences": ("a",), "max_ttl": 0, "secret_hash": SECRET_HASH},
        # `s2s clients add --ttl nan` got through, and the registry then held non-standard JSON.
        {"client_id": "c", "audiences": ("a",), "max_ttl": float("nan"), "secret_hash": SECRET_HASH},
        {"client_id": "c", "audiences": ("a",), "max_ttl": float("inf"), "secret_hash": SECRET_HASH},
        {"client_id": "c", "audiences": ("a",), "max_ttl": True, "secret_hash": SECRET_HASH},
        # `$` matches before a trailing newline: the patterns anchor with \Z (issue 9, "Also").
        {"client_id": "svc\n", "audiences": ("a",), "secret_hash": SECRET_HASH},
        {"client_id": "c", "audiences": ("a",), "scopes": ("orders:read\n",), "secret_hash": SECRET_HASH},
    ],
    ids=[
        "id",
        "no-audience",
        "no-credential",
        "scope",
        "ttl",
        "ttl-nan",
        "ttl-inf",
        "ttl-bool",
        "id-newline",
        "scope-newline",
    ],
)
def test_client_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Client(**kwargs)  # type: ignore[arg-type]


def test_file_registry_roundtrip_mode_and_cross_process_reload(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "reg" / "clients.json"
    writer = FileClientRegistry(path)
    reader = FileClientRegistry(path, clock=clock, reload_interval=2)
    assert reader.get("svc") is None
    client, secret = new_client("svc", audiences=["https://a"], scopes=["x"], roles=["r"])
    writer.add(client)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secret is not None and secret not in path.read_text()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert reader.get("svc") is None  # checked less than reload_interval ago
    clock.advance(2)
    assert reader.get("svc") == client
    with pytest.raises(ConfigError):
        writer.add(client)
    writer.remove("svc")
    clock.advance(2)
    assert reader.get("svc") is None
    with pytest.raises(ConfigError):
        writer.remove("svc")


def test_broken_registry_file_keeps_last_good_clients(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "clients.json"
    registry = FileClientRegistry(path, clock=clock, reload_interval=1)
    client, _ = new_client("svc", audiences=["https://a"])
    FileClientRegistry(path).add(client)
    assert registry.get("svc") == client
    path.write_text("{not json")
    clock.advance(1)
    assert registry.get("svc") == client
    with pytest.raises(ConfigError):
        registry.all()


def test_open_client_registry_urls(tmp_path: Path) -> None:
    assert open_client_registry(f"file://{tmp_path}/c.json").path == tmp_path / "c.json"
    with pytest.raises(ConfigError):
        open_client_registry("s3://bucket/clients")


def test_secret_verifier_caches_success_only(clock: FakeClock) -> None:
    client = Client(client_id="svc", audiences=("a",), secret_hash=LEGACY_HASH)
    verifier = SecretVerifier(clock, ttl=60)
    assert not verifier.cached(client, SECRET)
    assert not verifier.verify(client, "wrong")
    assert not verifier.cached(client, "wrong")
    assert verifier.verify(client, SECRET)
    assert verifier.cached(client, SECRET)
    # A new secret (new hash) for the same client id misses the cache.
    rotated = Client(client_id="svc", audiences=("a",), secret_hash=hash_secret_scrypt("new-secret"))
    assert not verifier.cached(rotated, SECRET)
    clock.advance(60)
    assert not verifier.cached(client, SECRET)
