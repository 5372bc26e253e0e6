"""LocalSigner signs with ``cryptography`` directly: its tokens must verify with joserfc and PyJWT
exactly as the joserfc-built tokens did, for every algorithm, header and key."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import jwt
import pytest
from joserfc import jws as jose_jws
from joserfc.jwk import KeySet as JoseKeySet
from joserfc.jws import JWSRegistry
from jwt.algorithms import OKPAlgorithm

from s2s.errors import ConfigError
from s2s.keys import SIGNING_ALGS, LocalSigner, SigningKey
from s2s.keys._signing import b64url

CLAIMS: dict[str, Any] = {
    "iss": "https://issuer.test",
    "sub": "svc",
    "aud": "https://api.test",
    "client_id": "svc",
    "scope": "a:read b:write",
    "iat": 1_700_000_000,
    "exp": 1_700_000_300,
    "jti": "abc",
    "roles": ["r1", "rôle-ü"],  # non-ASCII: payload is UTF-8 JSON, as before
}
REGISTRY = JWSRegistry(algorithms=list(SIGNING_ALGS))


def _segment(token: str, index: int) -> bytes:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _verify_joserfc(token: str, key: SigningKey) -> dict[str, Any]:
    keys = JoseKeySet.import_key_set({"keys": [key.public_jwk_entry()]})
    obj = jose_jws.deserialize_compact(token, keys, algorithms=[key.alg], registry=REGISTRY)
    claims: dict[str, Any] = json.loads(obj.payload)
    return claims


def _verify_pyjwt(token: str, key: SigningKey) -> dict[str, Any]:
    if key.alg == "Ed25519":
        # PyJWT knows the RFC 9864 name only as "EdDSA": give its Ed25519 verifier the new name.
        public: Any = OKPAlgorithm.from_jwk(dict(key.public_jwk))
        verifier = jwt.PyJWS()
        verifier.register_algorithm("Ed25519", OKPAlgorithm())
        claims: dict[str, Any] = json.loads(verifier.decode(token, public, algorithms=["Ed25519"]))
        return claims
    public = jwt.PyJWKSet.from_dict({"keys": [key.public_jwk_entry()]})[key.kid].key
    decoded: dict[str, Any] = jwt.decode(
        token, public, algorithms=[key.alg], audience=CLAIMS["aud"], options={"verify_exp": False}
    )
    return decoded


@pytest.mark.parametrize("alg", list(SIGNING_ALGS))
def test_tokens_verify_with_joserfc_and_pyjwt(alg: str, one_key_per_alg: dict[str, SigningKey]) -> None:
    key = one_key_per_alg[alg]
    signer = LocalSigner()
    for _ in range(2):  # the second token comes from the cached key and header
        token = signer.sign(key, {"typ": "at+jwt"}, CLAIMS)
        assert json.loads(_segment(token, 0)) == {"typ": "at+jwt", "alg": alg, "kid": key.kid}
        assert _verify_joserfc(token, key) == CLAIMS
        assert _verify_pyjwt(token, key) == CLAIMS


@pytest.mark.parametrize("alg", list(SIGNING_ALGS))
def test_same_header_and_payload_as_joserfc(alg: str, one_key_per_alg: dict[str, SigningKey]) -> None:
    """Header and payload are the bytes joserfc's serializer produced before."""
    key = one_key_per_alg[alg]
    assert key.private_jwk is not None
    header = {"typ": "at+jwt", "alg": alg, "kid": key.kid}
    payload = json.dumps(CLAIMS, separators=(",", ":"), ensure_ascii=False).encode()
    jose_key = JoseKeySet.import_key_set({"keys": [dict(key.private_jwk)]}).keys[0]
    reference = jose_jws.serialize_compact(header, payload, jose_key, registry=REGISTRY)
    token = LocalSigner().sign(key, {"typ": "at+jwt"}, CLAIMS)
    assert token.split(".")[:2] == reference.split(".")[:2]  # byte for byte
    assert _segment(token, 1) == payload
    assert len(_segment(token, 2)) == len(_segment(reference, 2))
    if alg in ("Ed25519", "RS256"):  # deterministic signatures: the very same token
        assert token == reference


def test_es256_signatures_are_fixed_width_r_s(one_key_per_alg: dict[str, SigningKey]) -> None:
    """About 1 in 128 ECDSA halves has a leading zero byte: the JOSE form must still be 64 bytes."""
    key = one_key_per_alg["ES256"]
    signer = LocalSigner()
    for i in range(300):
        token = signer.sign(key, {"typ": "at+jwt"}, {**CLAIMS, "jti": str(i)})
        assert len(_segment(token, 2)) == 64
        if i % 30 == 0:
            assert _verify_pyjwt(token, key)["jti"] == str(i)


def test_key_chosen_by_header_fields_never_overrides_alg_and_kid(
    one_key_per_alg: dict[str, SigningKey],
) -> None:
    key = one_key_per_alg["ES256"]
    token = LocalSigner().sign(key, {"typ": "at+jwt", "alg": "none", "kid": "evil"}, CLAIMS)
    assert json.loads(_segment(token, 0)) == {"typ": "at+jwt", "alg": "ES256", "kid": key.kid}
    assert _verify_joserfc(token, key) == CLAIMS


def test_header_cache_keeps_distinct_headers_apart(one_key_per_alg: dict[str, SigningKey]) -> None:
    """True == 1 and hash alike: a cache keyed on them would answer one header for the other."""
    key = one_key_per_alg["Ed25519"]
    signer = LocalSigner()
    headers: list[dict[str, Any]] = [
        {"typ": "at+jwt"},
        {"typ": "JWT"},
        {},
        {"typ": "at+jwt", "x": True},
        {"typ": "at+jwt", "x": 1},
        {"typ": "at+jwt", "x": ["a"]},
        {"x": "1", "typ": "at+jwt"},
    ]
    for _ in range(2):
        for header in headers:
            token = signer.sign(key, header, CLAIMS)
            decoded = json.loads(_segment(token, 0))
            assert decoded == {**header, "alg": "Ed25519", "kid": key.kid}
            assert [type(v) for v in decoded.values()] == [
                type(v) for v in {**header, "alg": "", "kid": ""}.values()
            ]


def test_a_new_kid_signs_with_its_own_key(one_key_per_alg: dict[str, SigningKey]) -> None:
    signer = LocalSigner()
    first, second = one_key_per_alg["ES256"], one_key_per_alg["Ed25519"]
    assert _verify_joserfc(signer.sign(first, {"typ": "at+jwt"}, CLAIMS), first) == CLAIMS
    token = signer.sign(second, {"typ": "at+jwt"}, CLAIMS)
    assert _verify_joserfc(token, second) == CLAIMS
    assert json.loads(_segment(token, 0))["kid"] == second.kid


def test_unusable_keys_are_config_errors_without_key_material(one_key_per_alg: dict[str, SigningKey]) -> None:
    es, rsa = one_key_per_alg["ES256"], one_key_per_alg["RS256"]
    assert es.private_jwk is not None
    cases = [
        replace(es, private_jwk=None),
        replace(es, alg="RS256"),  # an EC key asked for an RSA signature
        replace(rsa, alg="ES256"),
        replace(rsa, alg="Ed25519"),
        replace(es, private_jwk={**es.private_jwk, "d": "AAAA"}),
    ]
    for bad in cases:
        with pytest.raises(ConfigError) as info:
            LocalSigner().sign(bad, {"typ": "at+jwt"}, CLAIMS)
        for secret in (es.private_jwk["d"], str((rsa.private_jwk or {}).get("d"))):
            assert secret not in str(info.value)
            assert secret not in repr(info.value)


def test_repr_shows_no_key(one_key_per_alg: dict[str, SigningKey]) -> None:
    signer = LocalSigner()
    key = one_key_per_alg["ES256"]
    signer.sign(key, {"typ": "at+jwt"}, CLAIMS)
    assert key.private_jwk is not None
    assert key.private_jwk["d"] not in repr(signer)
    assert key.kid not in repr(signer)


@pytest.mark.parametrize("data", [b"", b"f", b"fo", b"foo", bytes(range(256)), b"\xfb\xff\xfe"])
def test_b64url_is_unpadded_base64url(data: bytes) -> None:
    assert b64url(data) == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
