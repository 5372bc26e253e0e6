from __future__ import annotations

import json
from typing import Any

import pytest

from s2s.errors import ConfigError
from s2s.keys import SIGNING_ALGS, KeySet, KeyState, SigningKey, generate_key, thumbprint
from s2s.keys._model import public_jwk_of
from s2s.keys.errors import KeyNotFound

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")

# RFC 7638 section 3.1: this RSA key's SHA-256 thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def private_values(key: SigningKey) -> list[str]:
    assert key.private_jwk is not None
    return [str(key.private_jwk[m]) for m in PRIVATE_MEMBERS if m in key.private_jwk]


def test_rfc7638_example_thumbprint() -> None:
    assert thumbprint(RFC7638_KEY) == RFC7638_THUMBPRINT
    # Members outside the required set (alg, kid) do not change it.
    assert thumbprint({k: RFC7638_KEY[k] for k in ("e", "kty", "n")}) == RFC7638_THUMBPRINT


def test_rfc7638_key_loads_as_record_with_that_kid() -> None:
    doc = {
        "kid": RFC7638_THUMBPRINT,
        "alg": "RS256",
        "state": "next",
        "created_at": 0,
        "public_jwk": RFC7638_KEY,
    }
    key = SigningKey.from_document(doc)
    assert key.kid == RFC7638_THUMBPRINT
    assert key.public_jwk_entry()["kid"] == RFC7638_THUMBPRINT
    assert "alg" not in key.public_jwk  # only the RFC 7638 members are kept


@pytest.mark.parametrize("alg", list(SIGNING_ALGS))
def test_generated_key_kid_is_its_thumbprint(alg: str, one_key_per_alg: dict[str, SigningKey]) -> None:
    key = one_key_per_alg[alg]
    assert key.alg == alg
    assert key.kid == thumbprint(key.public_jwk)
    assert key.public_jwk["kty"] == SIGNING_ALGS[alg][0]


def test_rsa_keys_are_at_least_2048_bits(one_key_per_alg: dict[str, SigningKey]) -> None:
    import base64

    for alg in ("RS256", "PS256"):
        n = one_key_per_alg[alg].public_jwk["n"]
        bits = len(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))) * 8
        assert bits >= 2048


@pytest.mark.parametrize("alg", list(SIGNING_ALGS))
def test_document_round_trip(alg: str, one_key_per_alg: dict[str, SigningKey]) -> None:
    key = one_key_per_alg[alg].with_state(KeyState.PREVIOUS, activated_at=5.0, deactivated_at=9.5)
    again = SigningKey.from_document(json.loads(json.dumps(key.to_document())))
    assert again == key
    assert again.private_jwk == key.private_jwk
    keyset = KeySet((key, generate_key(now=3.0, state=KeyState.CURRENT)))
    assert KeySet.from_document(json.loads(json.dumps(keyset.to_document()))) == keyset


@pytest.mark.parametrize("alg", list(SIGNING_ALGS))
def test_private_material_never_leaves_through_public_views(
    alg: str, one_key_per_alg: dict[str, SigningKey]
) -> None:
    key = one_key_per_alg[alg].with_state(KeyState.CURRENT)
    keyset = KeySet((key,))
    secrets = private_values(key)
    assert secrets  # the key really has private material to leak
    views: dict[str, Any] = {
        "repr(key)": repr(key),
        "str(key)": str(key),
        "repr(keyset)": repr(keyset),
        "to_public_dict": json.dumps(key.to_public_dict()),
        "public_jwk_entry": json.dumps(key.public_jwk_entry()),
        "jwks": json.dumps(keyset.jwks()),
    }
    for name, text in views.items():
        for value in secrets:
            assert value not in text, f"private member leaked through {name}"
    for entry in keyset.jwks()["keys"]:
        assert not set(entry) & set(PRIVATE_MEMBERS)
    # The stored form does hold it: it is what key stores persist.
    assert key.to_document()["private_jwk"]["d"] in secrets


def test_kid_that_is_not_the_thumbprint_is_refused(one_key_per_alg: dict[str, SigningKey]) -> None:
    doc = one_key_per_alg["ES256"].to_document()
    doc["kid"] = RFC7638_THUMBPRINT
    with pytest.raises(ConfigError, match="not the thumbprint"):
        SigningKey.from_document(doc)


@pytest.mark.parametrize("alg", list(SIGNING_ALGS))
def test_private_key_of_another_key_is_refused(alg: str, one_key_per_alg: dict[str, SigningKey]) -> None:
    key = one_key_per_alg[alg]
    other = generate_key("ES256" if alg != "ES256" else "Ed25519", now=0.0)
    same_alg_other = generate_key(alg, now=0.0) if alg in ("ES256", "Ed25519") else None
    doc = key.to_document()
    doc["private_jwk"] = other.to_document()["private_jwk"]
    with pytest.raises(ConfigError, match="does not match") as info:
        SigningKey.from_document(doc)
    assert not any(v in str(info.value) for v in private_values(other))
    if same_alg_other is not None:
        doc["private_jwk"] = same_alg_other.to_document()["private_jwk"]
        with pytest.raises(ConfigError, match="does not match"):
            SigningKey.from_document(doc)


@pytest.mark.parametrize("alg", list(SIGNING_ALGS))
def test_swapped_private_scalar_is_refused(alg: str, one_key_per_alg: dict[str, SigningKey]) -> None:
    """Public members intact, private scalar from another key: tokens would not verify under the kid."""
    key = one_key_per_alg[alg]
    other = (
        generate_key(alg, now=0.0)
        if alg in ("ES256", "Ed25519")
        else one_key_per_alg["PS256" if alg == "RS256" else "RS256"]
    )
    doc = key.to_document()
    doc["private_jwk"]["d"] = other.to_document()["private_jwk"]["d"]
    with pytest.raises(ConfigError, match="does not match") as info:
        SigningKey.from_document(doc)
    assert doc["private_jwk"]["d"] not in str(info.value)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("kid"),
        lambda d: d.update(alg="HS256"),
        lambda d: d.update(alg="none"),
        lambda d: d.update(state="active"),
        lambda d: d.update(created_at="yesterday"),
        # json reads NaN: a NaN created_at made a next key's safe time NaN, so no rotation was refused
        lambda d: d.update(created_at=float("nan")),
        lambda d: d.update(activated_at=float("inf")),
        lambda d: d.update(retired_at=10**400),  # float() overflows
        lambda d: d.update(public_jwk={"kty": "oct", "k": "c2VjcmV0"}),
        lambda d: d.update(public_jwk="not a jwk"),
    ],
)
def test_malformed_records_are_refused_without_echoing_them(
    mutate: Any, one_key_per_alg: dict[str, SigningKey]
) -> None:
    key = one_key_per_alg["ES256"]
    doc = key.to_document()
    mutate(doc)
    with pytest.raises(ConfigError) as info:
        SigningKey.from_document(doc)
    assert key.private_jwk is not None
    assert key.private_jwk["d"] not in str(info.value)


def test_keyset_invariants() -> None:
    a = generate_key(now=0.0, state=KeyState.CURRENT)
    b = generate_key(now=0.0, state=KeyState.CURRENT)
    with pytest.raises(ConfigError, match="more than one current"):
        KeySet((a, b))
    with pytest.raises(ConfigError, match="duplicate kid"):
        KeySet((a, a.with_state(KeyState.NEXT)))
    with pytest.raises(ConfigError):
        KeySet.from_document({"format": "other", "keys": []})
    with pytest.raises(ConfigError):
        KeySet.from_document({"format": KeySet.FORMAT, "keys": "x"})
    with pytest.raises(KeyNotFound):
        KeySet((a,)).get("missing")


def test_jwks_holds_next_current_previous_only() -> None:
    states = list(KeyState)
    keys = tuple(generate_key(now=float(i), state=s) for i, s in enumerate(states))
    jwks = KeySet(keys).jwks()
    by_kid = {k.kid: k for k in keys}
    assert [by_kid[e["kid"]].state for e in jwks["keys"]] == [
        KeyState.CURRENT,
        KeyState.NEXT,
        KeyState.PREVIOUS,
    ]
    for entry in jwks["keys"]:
        assert entry["use"] == "sig"
        assert entry["alg"] == "ES256"
        assert public_jwk_of(entry) == dict(by_kid[entry["kid"]].public_jwk)


def test_stored_keys_must_fit_their_alg() -> None:
    from joserfc.jwk import ECKey, RSAKey

    def record(alg: str, jwk: dict[str, object]) -> dict[str, object]:
        public = public_jwk_of(jwk)
        return {
            "kid": thumbprint(public),
            "alg": alg,
            "state": "current",
            "created_at": 0,
            "public_jwk": public,
        }

    small_rsa = RSAKey.generate_key(1024, private=False).as_dict()
    p384 = ECKey.generate_key("P-384", private=False).as_dict()
    for alg, jwk, problem in (
        ("RS256", small_rsa, "at least 2048"),
        ("ES256", p384, "curve P-256"),
        ("RS256", p384, "cannot sign"),
    ):
        with pytest.raises(ConfigError, match=problem):
            SigningKey.from_document(record(alg, jwk))
