"""private_key_jwt (RFC 7523) through the token endpoint: only a fresh, well-bound assertion passes."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.issuer import InMemoryReplayCache
from s2s.issuer._assertion import JWT_BEARER_ASSERTION_TYPE
from tests.issuer.helpers import (
    FORM,
    ISSUER,
    TOKEN_URL,
    PkjClient,
    assert_refused,
    make_assertion,
    refusal_reason,
)

Client = TestClient[Litestar]


def send(client: Client, assertion: str, **extra: str) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
    return client.post("/oauth2/token", content=urlencode(form), headers={"content-type": FORM})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_happy_path_with_issuer_audience_and_client_id(
    client: Client, pkj: PkjClient, clock: FakeClock
) -> None:
    assertion = make_assertion(pkj, now=clock.now(), aud=[ISSUER])
    response = send(client, assertion, client_id="pkj")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "orders:read"


def test_replay_is_refused(
    client: Client, pkj: PkjClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    assertion = make_assertion(pkj, now=clock.now())
    assert send(client, assertion).status_code == 200
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
    assert "already used" in refusal_reason(caplog)


def test_replay_after_its_lifetime_is_refused_by_exp(
    client: Client, pkj: PkjClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    assertion = make_assertion(pkj, now=clock.now())
    assert send(client, assertion).status_code == 200
    clock.advance(3600)
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
    assert "expired" in refusal_reason(caplog)


CLAIM_CASES: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
    ("wrong aud", {"aud": "https://other.example/token"}, (), "aud"),
    ("wrong iss", {"iss": "svc"}, (), ""),
    ("wrong sub", {"sub": "someone-else"}, (), "sub"),
    ("no exp", {}, ("exp",), "exp"),
    ("no jti", {}, ("jti",), "jti"),
    ("exp a string", {"exp": "soon"}, (), "exp"),
    ("too long lived", {"exp_offset": 7200}, (), "too long"),
    ("expired", {"exp_offset": -120}, (), "expired"),
    ("not yet valid", {"nbf_offset": 600}, (), "not valid yet"),
    ("issued in the future", {"iat_offset": 600}, (), "future"),
]


@pytest.mark.parametrize("case", CLAIM_CASES, ids=[c[0] for c in CLAIM_CASES])
def test_bad_claims(
    client: Client,
    pkj: PkjClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, dict[str, Any], tuple[str, ...], str],
) -> None:
    _, claims, drop, expected = case
    now = clock.now()
    claims = dict(claims)
    for name in ("exp", "nbf", "iat"):
        offset = claims.pop(f"{name}_offset", None)
        if offset is not None:
            claims[name] = int(now) + offset
    assertion = make_assertion(pkj, now=now, drop=drop, **claims)
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
    assert expected in refusal_reason(caplog)


def test_alg_none_is_refused(
    client: Client, pkj: PkjClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    now = int(clock.now())
    claims = {"iss": "pkj", "sub": "pkj", "aud": f"{ISSUER}/oauth2/token", "exp": now + 60, "jti": "n1"}
    for header in ({"alg": "none", "kid": pkj.kid}, {"alg": "none"}):
        assertion = f"{b64(header)}.{b64(claims)}."
        assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
        assertion = f"{b64(header)}.{b64(claims)}.c2ln"
        assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)


def test_hs256_with_public_key_as_secret_is_refused(
    client: Client, pkj: PkjClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib
    import hmac

    now = int(clock.now())
    claims = {"iss": "pkj", "sub": "pkj", "aud": f"{ISSUER}/oauth2/token", "exp": now + 60, "jti": "h1"}
    signing_input = f"{b64({'alg': 'HS256', 'kid': pkj.kid})}.{b64(claims)}"
    # The classic confusion: HMAC keyed with the public key material the server knows.
    secret = json.dumps(pkj.public_jwk).encode()
    sig = base64.urlsafe_b64encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()).rstrip(
        b"="
    )
    assertion = f"{signing_input}.{sig.decode()}"
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
    assert "algorithm" in refusal_reason(caplog)


def test_key_not_registered(
    client: Client, pkj: PkjClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    # Same kid, other key: the signature fails.
    assertion = make_assertion(pkj, now=clock.now(), key=stranger)
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
    # Unknown kid.
    assertion = make_assertion(pkj, now=clock.now(), key=stranger, header={"kid": "unknown"})
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
    assert "kid" in refusal_reason(caplog)
    # No kid at all (allowed, RFC 7523): the registered keys are tried, and none verifies it.
    assertion = make_assertion(pkj, now=clock.now(), key=stranger, header={"kid": None})
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)


@pytest.mark.parametrize(
    "extra_header",
    [
        {"crit": 5},
        {"crit": [[1]]},
        {"crit": ["exp"]},
        {"b64": False},
        {"jwk": {"kty": "EC"}},
        {"jku": "https://x"},
    ],
    ids=["crit-int", "crit-nested", "crit-unknown", "b64", "jwk", "jku"],
)
def test_dangerous_headers_are_refused_not_500(
    client: Client,
    pkj: PkjClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    extra_header: dict[str, Any],
) -> None:
    assertion = make_assertion(pkj, now=clock.now(), header=extra_header)
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)


@pytest.mark.parametrize(
    "assertion",
    [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "....",
        "e30.e30.",
        "W10.e30.sig",
        "InN0ciI.InN0ciI.sig",
        "é.é.é",
        "x" * 9000,
    ],
)
def test_garbage_assertions(client: Client, caplog: pytest.LogCaptureFixture, assertion: str) -> None:
    response = send(client, assertion)
    # An empty value counts as omitted (RFC 6749 §3.1): then the type has no assertion; an
    # oversized parameter is refused before anyone looks at it.
    expected = (
        (400, "invalid_request") if assertion == "" or len(assertion) > 8192 else (401, "invalid_client")
    )
    assert_refused(response, *expected, caplog)


def test_client_id_must_match_assertion(
    client: Client, pkj: PkjClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    assertion = make_assertion(pkj, now=clock.now())
    assert_refused(send(client, assertion, client_id="svc"), 401, "invalid_client", caplog, assertion)


def test_assertion_for_unknown_client(
    client: Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.issuer.helpers import make_pkj

    other = make_pkj("ghost")
    assertion = make_assertion(other, now=clock.now())
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)


def test_replay_cache_forgets_expired_and_fails_closed_when_full(clock: FakeClock) -> None:
    cache = InMemoryReplayCache(clock, max_entries=2)
    now = clock.now()
    assert cache.seen_or_add("a", now + 10) is False
    assert cache.seen_or_add("a", now + 10) is True
    assert cache.seen_or_add("b", now + 100) is False
    # Full of live entries: a new one is refused rather than evicting (eviction would allow replays).
    assert cache.seen_or_add("c", now + 10) is True
    clock.advance(11)
    assert cache.seen_or_add("a", now + 30) is False  # "a" expired: purged, accepted again
    assert cache.seen_or_add("c", now + 30) is True  # still full ("a" again and "b")


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA", "Ed25519"])
def test_rsa_and_ed25519_client_keys(
    settings: Any, store: Any, clock: FakeClock, alg: str, caplog: pytest.LogCaptureFixture
) -> None:
    import uuid

    import jwt
    from joserfc.jwk import OKPKey, RSAKey

    from s2s.issuer import Client as ClientRecord
    from s2s.issuer import InMemoryClientRegistry
    from s2s.litestar.issuer import create_issuer_app

    key = (
        RSAKey.generate_key(2048, private=True)
        if alg[0] in "RP"
        else OKPKey.generate_key("Ed25519", private=True)
    )
    public = {**key.as_dict(private=False), "kid": "k1"}
    registry = InMemoryClientRegistry([ClientRecord(client_id="c", audiences=("https://a",), jwks=(public,))])
    app = create_issuer_app(settings, store=store, registry=registry, clock=clock, reload_loop=False)
    now = int(clock.now())
    claims = {"iss": "c", "sub": "c", "aud": ISSUER, "exp": now + 60, "jti": uuid.uuid4().hex}
    with TestClient(app, base_url=ISSUER) as tc:
        if alg == "Ed25519":
            # PyJWT does not know the RFC 9864 name yet: build the JWS with joserfc.
            from joserfc import jws

            registry_ed = jws.JWSRegistry(algorithms=["Ed25519"])
            assertion = jws.serialize_compact(
                {"alg": "Ed25519", "kid": "k1"}, json.dumps(claims), key, registry=registry_ed
            )
        else:
            assertion = jwt.encode(claims, key.private_key, algorithm=alg, headers={"kid": "k1"})  # type: ignore[arg-type]
        assert send(tc, assertion).status_code == 200
        # The same key with an algorithm of another family is refused.
        other = {"RS256": "ES256", "PS256": "ES256", "EdDSA": "RS256", "Ed25519": "RS256"}[alg]
        forged = f"{b64({'alg': other, 'kid': 'k1'})}.{b64({**claims, 'jti': 'x'})}.c2ln"
        assert_refused(send(tc, forged), 401, "invalid_client", caplog, forged)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400], ids=["NaN", "Infinity", "huge-int"])
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_non_finite_time_claims_are_refused(
    client: Client,
    pkj: PkjClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    *,
    claim: str,
    value: float,
) -> None:
    # Python's json reads NaN and Infinity; every comparison with NaN is false, so a NaN exp would
    # pass both the expiry and the lifetime checks and its jti would never count as seen. An
    # integer of 400 digits made float() overflow: a 500.
    assertion = make_assertion(pkj, now=clock.now(), **{claim: value})
    part = assertion.split(".")[1]
    payload = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
    assert f'"{claim}":{json.dumps(value)}' in payload  # the token really carries NaN / Infinity
    for _ in range(2):  # the first use, then its replay
        assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
        assert f"{claim} is not a number" in refusal_reason(caplog)


@pytest.mark.parametrize(
    ("usage", "accepted"),
    [
        ({}, True),
        ({"use": "sig"}, True),
        ({"key_ops": ["verify"]}, True),
        ({"key_ops": ["sign", "verify"]}, True),
        ({"use": "enc"}, False),
        ({"key_ops": ["encrypt"]}, False),
        ({"key_ops": ["sign"]}, False),
        ({"key_ops": "verify"}, False),
        ({"key_ops": []}, False),
    ],
    ids=str,
)
def test_client_keys_whose_use_or_key_ops_exclude_verification_are_refused(
    usage: dict[str, Any], accepted: bool
) -> None:
    from s2s.errors import ConfigError
    from s2s.issuer import Client as ClientRecord
    from s2s.issuer._assertion import client_public_key
    from tests.issuer.helpers import make_pkj

    jwk = {**make_pkj().public_jwk, **usage}
    if accepted:
        assert client_public_key(jwk)["kid"] == jwk["kid"]
        ClientRecord(client_id="c", audiences=("https://a",), jwks=(jwk,))
        return
    with pytest.raises(ConfigError, match="signature keys"):
        client_public_key(jwk)
    with pytest.raises(ConfigError):
        ClientRecord(client_id="c", audiences=("https://a",), jwks=(jwk,))


@pytest.mark.parametrize("member", [{"cty": "JWT"}, {"x5c": ["MIIB"]}, {"zip": "DEF"}, {"enc": "A128GCM"}])
def test_the_one_header_deny_list_applies_to_assertions(
    client: Client, pkj: PkjClient, clock: FakeClock, caplog: pytest.LogCaptureFixture, member: dict[str, Any]
) -> None:
    """The verifier and the assertion check share s2s.jose.NEVER_ALLOWED (``cty`` was refused by the
    verifier only): a header member that announces nested content or carries keys is refused."""
    assertion = make_assertion(pkj, now=clock.now(), header=member)
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
    # x5c (MSAL sends its certificate) is read only to be compared with the registered key.
    assert ("x5c" if "x5c" in member else "refused member") in refusal_reason(caplog)
    # Headers that real clients send (MSAL: x5t#S256, typ JWT) are accepted.
    ok = make_assertion(pkj, now=clock.now(), header={"x5t#S256": "abc", "typ": "JWT"})
    assert send(client, ok).status_code == 200


@pytest.mark.parametrize(
    "aud",
    [
        ["https://other-as.example/token", TOKEN_URL],  # audience injection: ours among others
        [TOKEN_URL, ISSUER],  # even two of ours: one audience, alone
        [],
        "https://other-as.example/token",
        [["nested"]],
    ],
    ids=["other-and-ours", "both-of-ours", "empty", "other", "nested"],
)
def test_an_assertion_names_us_alone(
    client: Client, pkj: PkjClient, clock: FakeClock, caplog: pytest.LogCaptureFixture, aud: Any
) -> None:
    assertion = make_assertion(pkj, now=clock.now(), aud=aud)
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
    assert "aud must be this issuer or its token endpoint, alone" in refusal_reason(caplog)


@pytest.mark.parametrize("aud", [TOKEN_URL, ISSUER, [TOKEN_URL], [ISSUER]], ids=str)
def test_a_one_element_audience_is_the_same_as_the_string(
    client: Client, pkj: PkjClient, clock: FakeClock, aud: Any
) -> None:
    assert send(client, make_assertion(pkj, now=clock.now(), aud=aud)).status_code == 200


@pytest.mark.parametrize("typ", ["at+jwt", "dpop+jwt", "application/at+jwt", "logout+jwt", "secevent+jwt"])
def test_other_kinds_of_jwt_are_not_assertions(
    client: Client, pkj: PkjClient, clock: FakeClock, caplog: pytest.LogCaptureFixture, typ: str
) -> None:
    assertion = make_assertion(pkj, now=clock.now(), header={"typ": typ})
    assert_refused(send(client, assertion), 401, "invalid_client", caplog, assertion)
    assert "typ names another kind of JWT" in refusal_reason(caplog)


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "client-authentication+jwt", "application/jwt"])
def test_assertion_types_clients_send_are_accepted(
    client: Client, pkj: PkjClient, clock: FakeClock, typ: str | None
) -> None:
    assertion = make_assertion(pkj, now=clock.now(), header={"typ": typ})
    assert send(client, assertion).status_code == 200
