"""Every Wycheproof JWS / JWK vector, and the ES256 / RS256 / PS256 / Ed25519 signature vectors.

The JWS and JWK vectors sign non-JWT payloads ("foo"), so they run through the verifier's JWS layer:
``parse_jwks`` (what a JWKS fetch loads) -> ``parse_compact`` (header rules) -> key by kid ->
``check_signature`` (pinned alg + signature). Claims are out of scope for them; in addition every
vector token is fed to a full TokenVerifier, which must refuse it with an InvalidToken subclass
(401 ``invalid_token``, never anything else). The signature vectors run through ``load_jwk`` and
the loaded key's ``verify``, the exact code the verifier calls.

Where this verifier's answer differs from a vector's ``result`` the table below says why.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from s2s.clock import FakeClock
from s2s.jose import (
    AlgorithmPolicy,
    JoseError,
    KeyRejected,
    VerifyKey,
    check_signature,
    load_jwk,
    parse_compact,
)
from s2s.verify import InvalidToken, JWKSError, TokenVerifier, VerifierConfig
from s2s.verify._jwks import parse_jwks

# shared/ sits beside the clone (CI), or above the worktree that holds it (/work/wt/<branch>).
VECTORS = next(
    (
        d / "shared" / "vectors" / "wycheproof"
        for d in Path(__file__).resolve().parents
        if (d / "shared" / "vectors" / "wycheproof").is_dir()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "vectors" / "wycheproof",
)

POLICY = AlgorithmPolicy.of(["ES256", "RS256", "PS256", "Ed25519"])

_HS = "HS* is never allowed: oct keys are dropped when a JWKS is loaded, so no key can verify it"
_UNSUPPORTED = "algorithm outside the supported allowlist (ES256, RS256, PS256, Ed25519): key dropped"
# (file, tcId) -> (our result, why)
OVERRIDES: dict[tuple[str, int], tuple[str, str]] = {
    **{("jws", i): ("invalid", _HS) for i in (1, 348, 352, 357, 358, 359, 376, 377)},
    **{("jws", i): ("invalid", _UNSUPPORTED + " (RS384/RS512)") for i in range(264, 272)},
    **{("jws", i): ("invalid", _UNSUPPORTED + " (PS384)") for i in range(320, 324)},
    **{("jws", i): ("invalid", _UNSUPPORTED + " (PS512)") for i in range(325, 329)},
    **{("jws", i): ("invalid", _UNSUPPORTED + " (ES512 on P-521)") for i in (347, 351)},
    **{
        ("jws", i): ("invalid", "token alg PS384 differs from the key's alg PS256: one key, one alg")
        for i in (346, 350)
    },
    **{
        ("jws", i): ("invalid", "strict base64url: a character outside the alphabet is refused, not skipped")
        for i in (372, 373)
    },
    **{("jwk", i): ("invalid", _HS) for i in (2, 13, 14, 15)},
}


def _load(name: str) -> dict[str, Any]:
    return dict(json.loads((VECTORS / name).read_text()))


def _keys_of(group: dict[str, Any]) -> dict[str, VerifyKey]:
    source = group.get("public") or group["private"]
    doc = source if "keys" in source else {"keys": [source]}
    try:
        keys, _ = parse_jwks(doc, POLICY, max_keys=64)
    except JWKSError:
        return {}
    return keys


def _jws_result(token: str, keys: dict[str, VerifyKey]) -> str:
    try:
        parsed = parse_compact(token)
        key = keys.get(parsed.kid or "")
        if key is None:
            return "invalid"  # unknown key
        check_signature(parsed, key)
    except JoseError:
        return "invalid"
    return "valid"


def _cases(file: str, tag: str) -> list[Any]:
    out = []
    for group in _load(file)["testGroups"]:
        for test in group["tests"]:
            out.append(pytest.param(tag, group, test, id=f"{tag}-{test['tcId']}-{test['comment'][:40]}"))
    return out


JWS_CASES = _cases("json_web_signature_test.json", "jws") + _cases("json_web_key_test.json", "jwk")


def test_vector_counts() -> None:
    assert len([c for c in JWS_CASES if c.values[0] == "jws"]) == 401
    assert len([c for c in JWS_CASES if c.values[0] == "jwk"]) == 26


@pytest.mark.parametrize(("tag", "group", "test"), JWS_CASES)
def test_jws_and_jwk_vectors(tag: str, group: dict[str, Any], test: dict[str, Any]) -> None:
    expected = test["result"]
    override = OVERRIDES.get((tag, test["tcId"]))
    if override is not None:
        assert override[0] != expected, "stale override"
        expected = override[0]
    got = _jws_result(test["jws"], _keys_of(group))
    if expected == "acceptable":
        assert got in ("valid", "invalid")
    else:
        assert got == expected, test["comment"]


def _groups_with_tokens() -> list[Any]:
    out = []
    for file in ("json_web_signature_test.json", "json_web_key_test.json"):
        for n, group in enumerate(_load(file)["testGroups"]):
            out.append(pytest.param(group, id=f"{file.split('_')[2]}-group{n}-{group['comment']}"))
    return out


@pytest.mark.parametrize("group", _groups_with_tokens())
def test_every_vector_token_is_refused_by_the_full_verifier(group: dict[str, Any]) -> None:
    """The payloads are not JWT claims: the whole verifier must say InvalidToken, nothing else."""
    source = group.get("public") or group["private"]
    doc = source if "keys" in source else {"keys": [source]}
    issuer = "https://wycheproof.test"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=doc)

    config = VerifierConfig.for_s2s(issuer, "aud", token_types=("", "jwt", "at+jwt"))
    verifier = TokenVerifier(
        config, http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)), clock=FakeClock()
    )

    async def run() -> None:
        for test in group["tests"]:
            with pytest.raises(InvalidToken) as info:
                await verifier.verify(test["jws"])
            # A typed refusal (MalformedToken, BadSignature, ...), answered as invalid_token.
            assert (info.value.status_code, info.value.error) == (401, "invalid_token")
            if test["jws"]:
                assert test["jws"] not in str(info.value)

    asyncio.run(run())


# -- signature vectors ---------------------------------------------------------------------------

SIG_FILES = {
    "ecdsa_secp256r1_sha256_p1363_test.json": "ES256",
    "rsa_signature_2048_sha256_test.json": "RS256",
    "rsa_pss_2048_sha256_mgf1_32_test.json": "PS256",
    "ed25519_test.json": "Ed25519",
}
# Wycheproof "acceptable" = either answer is fine; we record which one this verifier gives.
ACCEPTABLE_POLICY = {("rsa_signature_2048_sha256_test.json", 8): "invalid"}  # PKCS#1 DigestInfo without NULL


def _u(value: int, size: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()


def _jwk_of(group: dict[str, Any], alg: str) -> dict[str, Any]:
    jwk = group.get("publicKeyJwk") or group.get("keyJwk")
    if jwk is None:  # a few ECDSA groups give the point only as hex coordinates
        pk = group["publicKey"]
        jwk = {"kty": "EC", "crv": "P-256", "x": _u(int(pk["wx"], 16), 32), "y": _u(int(pk["wy"], 16), 32)}
    return {**jwk, "alg": alg, "kid": "wycheproof"}


def _sig_cases() -> list[Any]:
    out = []
    for file, alg in SIG_FILES.items():
        for n, group in enumerate(_load(file)["testGroups"]):
            out.append(pytest.param(file, alg, group, id=f"{alg}-group{n}"))
    return out


def test_signature_vector_counts() -> None:
    total = {f: sum(len(c.values[2]["tests"]) for c in _sig_cases() if c.values[0] == f) for f in SIG_FILES}
    assert total == {
        "ecdsa_secp256r1_sha256_p1363_test.json": 262,
        "rsa_signature_2048_sha256_test.json": 259,
        "rsa_pss_2048_sha256_mgf1_32_test.json": 108,
        "ed25519_test.json": 151,
    }


@pytest.mark.parametrize(("file", "alg", "group"), _sig_cases())
def test_signature_vectors(file: str, alg: str, group: dict[str, Any]) -> None:
    try:
        key = load_jwk(_jwk_of(group, alg), AlgorithmPolicy.of([alg]))
    except KeyRejected as exc:  # pragma: no cover - every group's key is a valid public key
        pytest.fail(f"key refused: {exc}")
    assert key.alg == alg
    for test in group["tests"]:
        ok = key.verify(bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]))
        got = "valid" if ok else "invalid"
        expected = test["result"]
        if expected == "acceptable":
            expected = ACCEPTABLE_POLICY[(file, test["tcId"])]
        assert got == expected, f"tcId {test['tcId']}: {test['comment']}"
