"""Happy paths and the per-issuer rules of TokenVerifier / SyncTokenVerifier."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.keys import LocalSigner, SigningKey
from s2s.verify import (
    InvalidAudience,
    SyncTokenVerifier,
    TokenVerifier,
    UnknownKey,
    UntrustedIssuer,
    VerifierConfig,
)
from tests.verify.conftest import AUDIENCE, ISSUER, JWKS_URL, JwksServer, Mint, base_claims, forge


@pytest.mark.parametrize("name", ["es", "rs", "ps", "ed"])
def test_each_allowed_algorithm_verifies(
    name: str, keyring: dict[str, SigningKey], mint: Mint, verifier: TokenVerifier
) -> None:
    principal = asyncio.run(verifier.verify(mint(signing_key=keyring[name])))
    assert principal.subject == "billing-service"
    assert principal.issuer == ISSUER
    assert principal.audience == (AUDIENCE,)
    assert principal.scopes == {"orders:read", "orders:write"}
    assert principal.client_id == "billing-service"
    assert principal.token_id == "token-1"


def test_eddsa_header_is_read_as_ed25519(
    keyring: dict[str, SigningKey], clock: FakeClock, verifier: TokenVerifier
) -> None:
    ed = keyring["ed"]
    token = forge({"alg": "EdDSA", "kid": ed.kid, "typ": "at+jwt"}, base_claims(clock), key=ed)
    assert asyncio.run(verifier.verify(token)).subject == "billing-service"


def test_typ_is_case_insensitive_with_optional_application_prefix(
    mint: Mint, verifier: TokenVerifier
) -> None:
    asyncio.run(verifier.verify(mint(typ="application/AT+JWT")))
    asyncio.run(verifier.verify(mint(typ="At+Jwt", jti="2")))


def test_sync_twin_accepts_and_refuses(mint: Mint, sync_verifier: SyncTokenVerifier) -> None:
    assert sync_verifier.verify(mint()).subject == "billing-service"
    with pytest.raises(InvalidAudience):
        sync_verifier.verify(mint(aud="other"))


def test_principal_surfaces_roles_and_scp(key: SigningKey, clock: FakeClock, server: JwksServer) -> None:
    config = VerifierConfig.for_s2s(ISSUER, AUDIENCE)
    verifier = TokenVerifier(config, http_client=server.async_client(), clock=clock)
    token = LocalSigner().sign(
        key, {"typ": "at+jwt"}, base_claims(clock, scope=..., scp=["a", "b"], roles=["Admin"], tid="t1")
    )
    p = asyncio.run(verifier.verify(token))
    assert p.scopes == {"a", "b"} and p.roles == {"Admin"} and p.tenant_id == "t1"


def test_start_prefetches_and_describe_lists_public_info(
    config: VerifierConfig, server: JwksServer, clock: FakeClock, keyring: dict[str, SigningKey]
) -> None:
    async def run() -> list[dict[str, Any]]:
        async with TokenVerifier(config, http_client=server.async_client(), clock=clock) as v:
            return v.describe()

    (info,) = asyncio.run(run())
    assert server.requests[JWKS_URL] == 1
    assert info["issuer"] == ISSUER and info["audiences"] == [AUDIENCE]
    assert info["jwks_uri"] == JWKS_URL
    assert set(info["kids"]) == {keyring[n].kid for n in ("es", "rs", "ps", "ed")}
    text = repr(info)
    for name in ("es", "rs", "ps", "ed"):
        assert keyring[name].private_jwk is not None
        assert keyring[name].private_jwk["d"] not in text


def test_start_creates_and_aclose_closes_its_own_client(config: VerifierConfig) -> None:
    async def run() -> None:
        v = TokenVerifier(config)
        await v.start()  # the fetch fails (no network): logged, not raised
        client = v._client
        assert client is not None
        await v.aclose()
        assert client.is_closed

    asyncio.run(run())


def test_aclose_leaves_a_given_client_open(config: VerifierConfig, server: JwksServer) -> None:
    async def run() -> None:
        client = server.async_client()
        v = TokenVerifier(config, http_client=client)
        await v.aclose()
        assert not client.is_closed
        await client.aclose()

    asyncio.run(run())


def test_duplicate_issuer_configs_refused() -> None:
    with pytest.raises(ConfigError):
        TokenVerifier([VerifierConfig.for_s2s(ISSUER, "a"), VerifierConfig.for_s2s(ISSUER, "b")])


def test_two_issuers_each_bound_to_their_own_keys(
    keyring: dict[str, SigningKey], clock: FakeClock, mint: Mint
) -> None:
    other_issuer = "https://other.test"
    server = JwksServer()
    server.serve_keys(JWKS_URL, [keyring["es"]])
    server.serve_keys(f"{other_issuer}/.well-known/jwks.json", [keyring["es_other"]])
    v = TokenVerifier(
        [VerifierConfig.for_s2s(ISSUER, AUDIENCE), VerifierConfig.for_s2s(other_issuer, AUDIENCE)],
        http_client=server.async_client(),
        clock=clock,
    )
    assert asyncio.run(v.verify(mint())).issuer == ISSUER
    assert (
        asyncio.run(v.verify(mint(signing_key=keyring["es_other"], iss=other_issuer))).issuer == other_issuer
    )
    # The other issuer's name with the first issuer's key: only the other issuer's keys are tried.
    with pytest.raises(UnknownKey, match="unknown key"):
        asyncio.run(v.verify(mint(iss=other_issuer, jti="x")))
    with pytest.raises(UnknownKey, match="unknown key"):
        asyncio.run(v.verify(mint(signing_key=keyring["es_other"], jti="y")))


def test_unconfigured_issuer_refused_before_any_fetch(
    mint: Mint, server: JwksServer, verifier: TokenVerifier
) -> None:
    with pytest.raises(UntrustedIssuer, match="untrusted issuer"):
        asyncio.run(verifier.verify(mint(iss="https://evil.test")))
    assert server.total == 0


def test_principal_from_claims_is_the_constructor_result_and_frozen() -> None:
    import dataclasses
    from types import MappingProxyType

    from s2s.verify import Principal

    claims = {
        "sub": "svc",
        "iss": "https://i",
        "aud": ["a", "b"],
        "exp": 5,
        "scope": "x y",
        "client_id": "c",
        "roles": ["r"],
        "tid": "t",
        "jti": "j",
        "permissions": "p",
    }
    built = Principal.from_claims(claims)
    expected = Principal(
        subject="svc",
        issuer="https://i",
        audience=("a", "b"),
        expires_at=5.0,
        client_id="c",
        scopes=frozenset({"x", "y"}),
        roles=frozenset({"r"}),
        permissions=frozenset({"p"}),
        tenant_id="t",
        token_id="j",
        claims=MappingProxyType(dict(claims)),
    )
    assert built == expected and type(built) is Principal
    assert dict(built.claims) == claims
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.subject = "other"  # type: ignore[misc]


def test_features_as_an_object_or_a_list_and_roles_as_a_string(
    key: SigningKey, clock: FakeClock, verifier: TokenVerifier
) -> None:
    """ioserver-oidc's auth-service sends features as an object (enabled = truthy value)."""
    signer = LocalSigner()
    features = {"beta": True, "limit": 5, "legacy": False, "quota": 0, "note": "on"}
    as_object = signer.sign(
        key,
        {"typ": "at+jwt"},
        base_claims(clock, features=features, roles="admin", permissions="orders:delete", jti="o"),
    )
    p = asyncio.run(verifier.verify(as_object))
    assert p.features == {"beta", "limit", "note"}
    assert dict(p.feature_values) == features
    assert p.roles == {"admin"} and p.permissions == {"orders:delete"}
    as_list = signer.sign(
        key, {"typ": "at+jwt"}, base_claims(clock, features=["beta", 7], roles=["a", "b"], jti="l")
    )
    p = asyncio.run(verifier.verify(as_list))
    assert p.features == {"beta"} and dict(p.feature_values) == {"beta": True}
    assert p.roles == {"a", "b"} and p.permissions == frozenset()
    none = asyncio.run(verifier.verify(signer.sign(key, {"typ": "at+jwt"}, base_claims(clock, jti="n"))))
    assert none.features == frozenset() and dict(none.feature_values) == {}
    with pytest.raises(TypeError):
        p.feature_values["beta"] = False  # type: ignore[index]


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "svc", "iss": "i", "aud": "a", "exp": 5, "scope": "x y", "client_id": "c", "jti": "j"},
        {"sub": "svc", "iss": "https://i", "aud": ["a", 3, "b"], "exp": 5.5, "scp": ["x", 1], "scope": "z"},
        {"aud": None, "azp": "p", "tenant_id": "t2", "uti": "u", "scp": "s t", "features": ["f", 2]},
        {"sub": 7, "iss": 8, "exp": 9, "appid": "app", "tid": 1, "jti": 2, "client_id": None, "roles": "r"},
        {"sub": "s", "aud": [], "features": {"on": 1, "off": 0}, "permissions": ["p", None], "scope": 5},
        {"sub": "s", "iss": "i", "aud": "a", "exp": 1, "scope": ["x", "y z"], "client_id": 5, "jti": None},
        {"sub": "s", "aud": "a", "scope": "", "tid": "t", "client_id": "c"},
        {},
    ],
)
def test_the_verifiers_principal_is_the_constructors(claims: dict[str, Any]) -> None:
    """The per-token constructor (from_verified_claims) builds the same object, field by field
    and in field order, as the dataclass constructor; replace() and repr() behave alike."""
    import dataclasses
    from types import MappingProxyType

    from s2s.verify import Principal
    from s2s.verify._principal import from_verified_claims

    features = claims.get("features")
    if isinstance(features, dict):
        names, values = frozenset(k for k, v in features.items() if v), dict(features)
    else:
        names = frozenset(f for f in features or () if isinstance(f, str))
        values = dict.fromkeys(sorted(names), True)

    def strings(value: Any, split: bool = False) -> frozenset[str]:
        if isinstance(value, str):
            return frozenset(value.split() if split else (value,))
        return frozenset(v for v in value or () if isinstance(v, str))

    client_id = claims.get("client_id", claims.get("azp", claims.get("appid")))
    tenant = claims.get("tid", claims.get("tenant_id"))
    jti = claims.get("jti", claims.get("uti"))
    aud = claims.get("aud")
    expected = Principal(
        subject=str(claims.get("sub", "")),
        issuer=str(claims.get("iss", "")),
        audience=(aud,) if isinstance(aud, str) else tuple(a for a in aud or () if isinstance(a, str)),
        expires_at=float(claims.get("exp", 0)),
        client_id=client_id if isinstance(client_id, str) else None,
        scopes=strings(claims["scp"] if "scp" in claims else claims.get("scope"), split=True)
        if isinstance(claims.get("scp", claims.get("scope")), str | list)
        else frozenset(),
        roles=strings(claims.get("roles")),
        permissions=strings(claims.get("permissions")),
        features=names,
        tenant_id=tenant if isinstance(tenant, str) else None,
        token_id=jti if isinstance(jti, str) else None,
        claims=MappingProxyType(dict(claims)),
        feature_values=MappingProxyType(values),
    )
    built = from_verified_claims(dict(claims))
    assert type(built) is Principal
    assert built == expected and repr(built) == repr(expected)
    assert list(vars(built).items()) == list(vars(expected).items())
    assert dataclasses.replace(built, subject="other") == dataclasses.replace(expected, subject="other")
    assert Principal.from_claims(claims) == expected
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.issuer = "other"  # type: ignore[misc]


def test_a_cold_verification_without_io_raises_and_catches_nothing(
    mint: Mint, verifier: TokenVerifier, sync_verifier: SyncTokenVerifier
) -> None:
    """With the keys at hand, a new token's verification ends without any exception raised on the
    way (a flow's result would otherwise come back in a StopIteration: a cost on every cold token);
    the I/O path, taken for the first token (keys fetched), gives the same Principal."""
    import sys
    from types import FrameType

    raised: list[str] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "exception":
            raised.append(f"{frame.f_code.co_name}: {arg[0].__name__}")
        return tracer

    async def both(token: str) -> tuple[Any, Any]:
        return await verifier.verify(token), sync_verifier.verify(token)

    first = asyncio.run(both(mint(jti="first")))  # fetches the keys: the I/O path
    assert first[0] == first[1] and first[0].token_id == "first"
    loop = asyncio.new_event_loop()
    try:
        token = mint(jti="cold")
        coro = both(token)
        sys.settrace(tracer)
        try:
            cold = loop.run_until_complete(coro)
        finally:
            sys.settrace(None)
    finally:
        loop.close()
    assert cold[0] == cold[1] and cold[0].token_id == "cold"
    assert not [r for r in raised if "verify" in r or "flow" in r or "drive" in r], raised


def test_the_null_span_around_each_verification_yields_itself_and_lets_errors_through() -> None:
    """With nothing tracing, the verifiers' span is NULL_SPAN, whose enter/exit are builtins (no
    Python frame per token): it must still behave as a context manager, ExitStack included."""
    import contextlib

    from s2s.observe import HUB, NULL_SPAN

    with HUB.span("s2s.verify") as span:
        assert span is NULL_SPAN
        span.set("k", 1)
    with pytest.raises(KeyError), NULL_SPAN:
        raise KeyError("inside")
    with contextlib.ExitStack() as stack:
        assert stack.enter_context(NULL_SPAN) is NULL_SPAN
    with pytest.raises(ValueError), contextlib.ExitStack() as stack:
        stack.enter_context(NULL_SPAN)
        raise ValueError("inside")


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value",
    [0, 1, 2**53 - 1, 2**53, 2**53 + 1, 2**63, -1, -(2**53), -(10**400), 10**400, 1.5, -0.0, True, None],
)
def test_time_claims_take_any_finite_json_number_and_nothing_else(name: str, value: Any) -> None:
    """Whatever path a time value takes (plain ints skip the float conversion), the outcome is
    the rule's: a finite JSON number compared with the clock, anything else an invalid claim."""
    from s2s.verify import ExpiredToken, InvalidClaim, TokenNotYetValid
    from s2s.verify._claims import ClaimsPolicy

    now = 10.0**9
    claims: dict[str, Any] = {"iss": ISSUER, "sub": "s", "aud": AUDIENCE, "exp": now + 600, "iat": now}
    claims[name] = value
    number = float(value) if type(value) in (int, float) and abs(value) < 1e300 else None
    if value is None and name != "exp":
        expected: Any = now + 600  # a null nbf or iat reads as absent (as before)
    elif number is None:
        expected = InvalidClaim
    elif name == "exp":
        expected = ExpiredToken if now >= number + 30 else number
    else:
        expected = TokenNotYetValid if number > now + 30 else now + 600
    policy = ClaimsPolicy(VerifierConfig.for_s2s(ISSUER, AUDIENCE))
    if isinstance(expected, type):
        with pytest.raises(expected):
            policy.check(claims, now)
    else:
        assert policy.check(claims, now) == expected


def test_verified_events_follow_every_change_of_subscriptions(
    config: VerifierConfig, server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    """A fan-out nobody listens to answers ``verified`` with a no-op builtin (no Python frame per
    token); a subscription made at any time, directly or to a nested fan-out, gets the next
    events, and an unsubscription stops them."""
    from s2s.observe import Fanout, Observer

    class Seen(Observer):
        def __init__(self) -> None:
            self.events: list[tuple[str | None, bool]] = []

        def verified(self, issuer: str, refusal: str | None, cached: bool) -> None:
            self.events.append((refusal, cached))

    inner = Fanout()
    outer = Fanout([inner])
    verifier = SyncTokenVerifier(config, http_client=server.sync_client(), clock=clock, observer=outer)
    seen, other = Seen(), Seen()
    verifier.verify(mint(jti="1"))
    verifier.verify(mint(jti="2"))
    inner.subscribe(seen)
    verifier.verify(mint(jti="3"))
    assert seen.events == [(None, False)]
    with pytest.raises(InvalidAudience):
        verifier.verify(mint(jti="4", aud="other"))
    assert seen.events[-1] == ("InvalidAudience", False)
    inner.unsubscribe(seen)
    verifier.verify(mint(jti="5"))
    assert len(seen.events) == 2
    outer.subscribe(other)
    verifier.verify(mint(jti="6"))
    inner.subscribe(seen)
    verifier.verify(mint(jti="7"))
    assert other.events == [(None, False)] * 2 and seen.events[2:] == [(None, False)]
    outer.unsubscribe(other)
    inner.unsubscribe(seen)
    verifier.verify(mint(jti="8"))
    assert len(other.events) == 2 and len(seen.events) == 3

    class Counting(Fanout):
        count = 0

        def verified(self, issuer: str, refusal: str | None, cached: bool) -> None:
            type(self).count += 1

    counting = Counting()
    own = SyncTokenVerifier(config, http_client=server.sync_client(), clock=clock, observer=counting)
    own.verify(mint(jti="9"))
    own.verify(mint(jti="10"))
    assert Counting.count == 2
    verifier.close()
    own.close()
