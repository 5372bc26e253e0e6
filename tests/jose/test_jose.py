"""The JOSE core: one base64url, one algorithm table, key loading and thumbprints that agree with
joserfc byte for byte, one header policy, compact parse/serialize and sign/verify per algorithm."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws as jose_jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from s2s.errors import ConfigError, S2SError
from s2s.jose import (
    CLIENT_ASSERTION_ALGS,
    NEVER_ALLOWED,
    PRIVATE_MEMBERS,
    SIGNING_ALGS,
    VERIFIER_ALGORITHMS,
    AlgorithmRejected,
    HeaderPolicy,
    HeaderRejected,
    KeyRejected,
    MalformedJWS,
    MissingKeyId,
    SignatureInvalid,
    TypeRejected,
    algs_for_jwk,
    b64url_decode,
    b64url_encode,
    check_signature,
    ecdsa_der_to_raw,
    generate_private_key,
    load_pem_private_key,
    load_verify_key,
    parse_compact,
    private_jwk_of,
    private_key_from_jwk,
    public_jwk_of,
    serialize_compact,
    sign_function,
    thumbprint,
)
from s2s.jose.errors import JoseError

ALGS = ("ES256", "ES384", "RS256", "PS256", "Ed25519")
JOSERFC = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {alg: generate_private_key(alg) for alg in ALGS}


@pytest.mark.parametrize("data", [b"", b"f", b"fo", b"foo", bytes(range(256)), b"\xfb\xff\xfe"])
def test_b64url_roundtrip_matches_the_standard_library(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert encoded == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert b64url_decode(encoded) == b64url_decode(encoded.encode()) == data


@pytest.mark.parametrize("bad", ["Zg==", "Zh", "Z", "Zm9v+", "Zm9v/", "Zm 9v", "Zm9v\n", "é"])
def test_b64url_decode_is_strict(bad: str) -> None:
    # padding, non-zero spare bits ("Zh"), impossible length, other alphabets, whitespace
    with pytest.raises(ValueError):
        b64url_decode(bad)


def test_b64url_decode_accepts_exactly_the_canonical_encodings() -> None:
    """Every last character after every length: decoded only where it is the canonical encoding
    of some bytes (the reference: the standard library's strict decoder, re-encoded)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for prefix in ("", "Q", "QU", "QUI", "QUJD"):
        for last in [*alphabet, "+", "/", "=", " ", "!", "é"]:
            text = prefix + last
            try:
                expected: bytes | None = base64.b64decode(
                    text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
                )
            except (ValueError, UnicodeEncodeError):
                expected = None
            if expected is not None and b64url_encode(expected) != text:
                expected = None  # decodable, but not the canonical (zero spare bits) encoding
            if "+" in text or "/" in text:
                expected = None  # the standard alphabet, not base64url
            for form in (text, text.encode()) if text.isascii() else (text,):
                if expected is None:
                    with pytest.raises(ValueError):
                        b64url_decode(form)
                else:
                    assert b64url_decode(form) == expected


def test_rfc7638_thumbprint_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", ALGS)
def test_jwk_export_and_thumbprint_agree_with_joserfc(alg: str, keys: dict[str, Any]) -> None:
    """Key files written before this core (by joserfc) and after it are the same bytes."""
    private = private_jwk_of(keys[alg])
    theirs = dict(JOSERFC[private["kty"]].import_key(keys[alg]).as_dict(private=True))
    theirs.pop("kid", None)
    assert private == theirs
    assert thumbprint(private) == JOSERFC[private["kty"]].import_key(public_jwk_of(private)).thumbprint()
    assert private_jwk_of(private_key_from_jwk(private)) == private
    assert not PRIVATE_MEMBERS & set(public_jwk_of(private))


@pytest.mark.parametrize("alg", ALGS)
def test_sign_and_verify_each_algorithm_and_joserfc_agrees(alg: str, keys: dict[str, Any]) -> None:
    private = private_jwk_of(keys[alg])
    public = public_jwk_of(private)
    token = serialize_compact(
        {"alg": alg, "kid": "k"}, {"sub": "svc", "n": "é"}, sign_function(keys[alg], alg)
    )
    parsed = parse_compact(token)
    check_signature(parsed, load_verify_key(public, alg, "k"))
    theirs = jose_jws.deserialize_compact(token, JOSERFC[public["kty"]].import_key(public), algorithms=[alg])
    assert json.loads(theirs.payload) == {"sub": "svc", "n": "é"}
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises((SignatureInvalid, MalformedJWS)):
        check_signature(parse_compact(tampered), load_verify_key(public, alg, "k"))


def test_eddsa_is_read_as_ed25519(keys: dict[str, Any]) -> None:
    token = serialize_compact({"alg": "EdDSA", "kid": "k"}, {"a": 1}, sign_function(keys["Ed25519"], "EdDSA"))
    parsed = parse_compact(token)
    assert parsed.alg == "Ed25519" and parsed.header["alg"] == "EdDSA"
    check_signature(parsed, load_verify_key(public_jwk_of(private_jwk_of(keys["Ed25519"])), "Ed25519"))


def test_a_key_verifies_only_its_pinned_algorithm(keys: dict[str, Any]) -> None:
    rsa_public = public_jwk_of(private_jwk_of(keys["RS256"]))
    token = serialize_compact({"alg": "PS256", "kid": "k"}, {"a": 1}, sign_function(keys["RS256"], "PS256"))
    with pytest.raises(AlgorithmRejected, match="algorithm mismatch"):
        check_signature(parse_compact(token), load_verify_key(rsa_public, "RS256"))
    with pytest.raises(KeyRejected, match="alg does not match"):
        load_verify_key(rsa_public, "ES256")
    with pytest.raises(AlgorithmRejected):
        sign_function(keys["ES256"], "ES384")  # a P-256 key never signs ES384


def test_one_table_behind_every_role() -> None:
    assert set(VERIFIER_ALGORITHMS) == set(SIGNING_ALGS)
    assert {a for algs in CLIENT_ASSERTION_ALGS.values() for a in algs} == {*ALGS, "EdDSA"}
    assert algs_for_jwk({"kty": "RSA"}) == ("RS256", "PS256")
    assert algs_for_jwk({"kty": "EC", "crv": "P-384"}) == ("ES384",)
    assert algs_for_jwk({"kty": "EC", "crv": "P-256", "alg": "ES384"}) == ()
    assert algs_for_jwk({"kty": "oct"}) == ()


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ({"kty": "oct", "k": "c2VjcmV0"}, "private members|symmetric key"),
        ({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "coordinate length"),
        ({"kty": "EC", "crv": "P-521", "x": "AAAA", "y": "AAAA"}, "unsupported curve"),
        ({"kty": "OKP", "crv": "Ed448", "x": "AAAA"}, "unsupported curve"),
        ({"kty": "RSA", "n": b64url_encode(b"\xc1" + bytes(127)), "e": "AQAB"}, "too small"),
        ({"kty": "RSA", "n": b64url_encode(b"\xc1" + bytes(255)), "e": "AQ"}, "exponent"),
    ],
)
def test_unusable_public_keys_are_refused_with_a_reason(jwk: dict[str, Any], reason: str) -> None:
    with pytest.raises(KeyRejected, match=reason) as info:
        load_verify_key(jwk, "ES256")
    assert isinstance(info.value, JoseError) and isinstance(info.value, S2SError)
    assert not isinstance(info.value, ValueError)


def test_point_off_the_curve_is_refused(keys: dict[str, Any]) -> None:
    public = public_jwk_of(private_jwk_of(keys["ES256"]))
    with pytest.raises(KeyRejected, match="invalid key"):
        load_verify_key({**public, "y": public["x"]}, "ES256")


def test_private_jwk_must_match_its_public_members(keys: dict[str, Any]) -> None:
    for alg in ("ES256", "Ed25519"):
        mine, other = private_jwk_of(keys[alg]), private_jwk_of(generate_private_key(alg))
        with pytest.raises(KeyRejected) as info:
            private_key_from_jwk({**mine, "d": other["d"]})
        assert other["d"] not in str(info.value) and mine["d"] not in str(info.value)


def test_pem_loading_refuses_without_quoting(keys: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = keys["ES256"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert load_pem_private_key(pem).public_key() == keys["ES256"].public_key()
    with pytest.raises(KeyRejected) as info:
        load_pem_private_key(pem[:80] + pem[90:])
    assert pem.decode()[30:60] not in str(info.value)


def test_der_to_raw_normalises_short_and_long_halves() -> None:
    assert ecdsa_der_to_raw(encode_dss_signature(1, 2), 32) == (1).to_bytes(32, "big") + (2).to_bytes(
        32, "big"
    )
    top = (1 << 255) + 7
    assert ecdsa_der_to_raw(encode_dss_signature(top, top), 32) == top.to_bytes(32, "big") * 2
    with pytest.raises(ValueError):
        ecdsa_der_to_raw(encode_dss_signature(1 << 256, 1), 32)
    key = ec.generate_private_key(ec.SECP384R1())
    raw = ecdsa_der_to_raw(key.sign(b"m", ec.ECDSA(hashes.SHA384())), 48)
    assert len(raw) == 96


# -- the header policy ----------------------------------------------------------------------------


def _token(header: dict[str, Any], key: Any) -> str:
    return serialize_compact(header, {"a": 1}, sign_function(key, str(header["alg"])))


def test_a_header_one_policy_accepted_is_checked_again_by_another(keys: dict[str, Any]) -> None:
    """Parsed headers are cached with the policy that last accepted them: another policy (or the
    same bytes later, after another policy) gets its own verdict, in any order."""
    open_policy = HeaderPolicy(allowed=None, require_kid=False)
    closed = HeaderPolicy()
    extra = _token({"alg": "ES256", "kid": "k", "x5t": "t"}, keys["ES256"])
    no_kid = _token({"alg": "ES256"}, keys["ES256"])
    for _ in range(2):
        assert parse_compact(extra, policy=open_policy).header["x5t"] == "t"
        with pytest.raises(HeaderRejected):
            parse_compact(extra)
        with pytest.raises(HeaderRejected):
            parse_compact(extra, policy=closed)
        assert parse_compact(no_kid, policy=open_policy).kid is None
        with pytest.raises(MissingKeyId):
            parse_compact(no_kid, policy=closed)
    plain = _token({"alg": "ES256", "kid": "k"}, keys["ES256"])
    for policy in (closed, open_policy, HeaderPolicy(), closed):
        assert parse_compact(plain, policy=policy).kid == "k"


@pytest.mark.parametrize("member", sorted(NEVER_ALLOWED))
def test_the_deny_list_holds_for_every_policy(member: str, keys: dict[str, Any]) -> None:
    token = _token({"alg": "ES256", "kid": "k", member: "x"}, keys["ES256"])
    for policy in (HeaderPolicy(), HeaderPolicy(allowed=None), HeaderPolicy.closed({"x5t"})):
        with pytest.raises(HeaderRejected):
            parse_compact(token, policy=policy)
    with pytest.raises(ConfigError):
        HeaderPolicy.closed({member})


def test_kid_and_typ_rules(keys: dict[str, Any]) -> None:
    no_kid = _token({"alg": "ES256"}, keys["ES256"])
    with pytest.raises(MissingKeyId):
        parse_compact(no_kid)
    assert parse_compact(no_kid, policy=HeaderPolicy(require_kid=False)).kid is None
    with pytest.raises(MissingKeyId):
        parse_compact(
            _token({"alg": "ES256", "kid": ""}, keys["ES256"]), policy=HeaderPolicy(require_kid=False)
        )
    with pytest.raises(TypeRejected):
        parse_compact(_token({"alg": "ES256", "kid": "k", "typ": 5}, keys["ES256"]))
    policy = HeaderPolicy(allowed=None, types=frozenset({"", "JWT"}), refused_types=frozenset({"at+jwt"}))
    policy.check_typ(None)
    policy.check_typ("jwt")
    for typ in ("application/at+jwt", "dpop+jwt"):
        with pytest.raises(TypeRejected):
            policy.check_typ(typ.lower().removeprefix("application/"))


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "é.é.é", "x" * 20_000, "e30.e30.", ".e30.c2ln", "W10.e30.c2ln", "e30x.e30.c2ln"],
)
def test_malformed_compact_serialisations(token: str) -> None:
    with pytest.raises(JoseError):
        parse_compact(token)
