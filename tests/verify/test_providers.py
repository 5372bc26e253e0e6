"""Provider presets against the token shapes those providers issue (access tokens accepted, their
ID tokens and other token kinds refused), claim assertions, the revocation hook, ID tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from s2s.clock import FakeClock
from s2s.keys import SigningKey
from s2s.verify import (
    InvalidAudience,
    InvalidClaim,
    InvalidToken,
    Principal,
    SyncTokenVerifier,
    TokenRevoked,
    TokenTooOld,
    TokenVerifier,
    UnknownKey,
    UntrustedIssuer,
    VerifierConfig,
    WrongTokenType,
)
from tests.verify.conftest import AUDIENCE, ISSUER, JwksServer, Mint, forge

ENTRA_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
API_CLIENT_ID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"


def verifier_for(
    config: VerifierConfig, key: SigningKey, clock: FakeClock, *, strip_alg: bool = False
) -> TokenVerifier:
    entry = key.public_jwk_entry()
    if strip_alg:  # Entra's JWKS entries have no alg, but x5t / x5c / issuer members
        entry.pop("alg")
        entry.update(x5t="abc", x5c=["MIIC"], issuer="https://login.microsoftonline.com/{tenantid}/v2.0")
    srv = JwksServer()
    assert config.jwks_uri is not None
    srv.serve_keys(config.jwks_uri, [entry])
    return TokenVerifier(config, http_client=srv.async_client(), clock=clock)


def token(key: SigningKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    return forge({"alg": key.alg, "kid": key.kid, **header}, claims, key=key)


def ok(v: TokenVerifier, t: str) -> Principal:
    return asyncio.run(v.verify(t))


# The refusal type for each description on the wire (the description itself is unchanged).
REFUSALS: dict[str, type[InvalidToken]] = {
    "wrong token type": WrongTokenType,
    "untrusted issuer": UntrustedIssuer,
    "tenant not allowed": UntrustedIssuer,
    "unknown key": UnknownKey,
    "invalid audience": InvalidAudience,
    "claim assertion failed": InvalidClaim,
    "token lifetime too long": InvalidClaim,
    "token too old": TokenTooOld,
    "token revoked": TokenRevoked,
    "token invalid": InvalidToken,
}


def refused(v: TokenVerifier, t: str, match: str | None = None) -> None:
    with pytest.raises(InvalidToken, match=match) as info:
        asyncio.run(v.verify(t))
    if match is not None:
        assert type(info.value) is REFUSALS[match]


# -- Entra ID v2 -----------------------------------------------------------------------------------


def entra_claims(clock: FakeClock, tid: str = ENTRA_TENANT, **extra: Any) -> dict[str, Any]:
    now = int(clock.now())
    claims = {
        "aud": API_CLIENT_ID,
        "iss": f"https://login.microsoftonline.com/{tid}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "azp": "client-app-id",
        "azpacr": "1",
        "oid": "oid-1",
        "sub": "sub-1",
        "tid": tid,
        "uti": "uti-1",
        "ver": "2.0",
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not ...}


ENTRA_HEADER = {"typ": "JWT", "x5t": "thumb"}


def test_entra_app_only_and_delegated_tokens(keyring: dict[str, SigningKey], clock: FakeClock) -> None:
    rs = keyring["rs"]
    v = verifier_for(VerifierConfig.for_entra(ENTRA_TENANT, API_CLIENT_ID), rs, clock, strip_alg=True)
    app = ok(v, token(rs, ENTRA_HEADER, entra_claims(clock, roles=["Orders.Read.All"], idtyp="app")))
    assert app.roles == {"Orders.Read.All"} and not app.scopes and app.tenant_id == ENTRA_TENANT
    assert app.client_id == "client-app-id" and app.token_id == "uti-1"
    user = ok(v, token(rs, ENTRA_HEADER, entra_claims(clock, scp="Orders.Read Orders.Write", uti="u2")))
    assert user.scopes == {"Orders.Read", "Orders.Write"} and not user.roles


def test_entra_id_token_refused(keyring: dict[str, SigningKey], clock: FakeClock) -> None:
    rs = keyring["rs"]
    v = verifier_for(VerifierConfig.for_entra(ENTRA_TENANT, API_CLIENT_ID), rs, clock, strip_alg=True)
    # An ID token issued to the API's own app registration: same aud, no scp/roles, a nonce, no azp.
    id_token = entra_claims(clock, azp=..., azpacr=..., nonce="n-1", name="Ada", preferred_username="ada@x")
    refused(v, token(rs, {"typ": "JWT"}, id_token))
    refused(v, token(rs, {"typ": "JWT"}, entra_claims(clock)), "wrong token type")  # neither scp nor roles
    refused(v, token(rs, ENTRA_HEADER, entra_claims(clock, scp="a", nonce="n")), "wrong token type")
    refused(v, token(rs, ENTRA_HEADER, entra_claims(clock, roles=["r"], tid="other-tenant")))


def test_entra_multi_tenant_allowlist(keyring: dict[str, SigningKey], clock: FakeClock) -> None:
    rs = keyring["rs"]
    config = VerifierConfig.for_entra(
        "organizations", API_CLIENT_ID, allowed_tenants=["tenant-a", "tenant-b"]
    )
    v = verifier_for(config, rs, clock, strip_alg=True)
    assert (
        ok(v, token(rs, ENTRA_HEADER, entra_claims(clock, tid="tenant-a", roles=["r"]))).tenant_id
        == "tenant-a"
    )
    refused(v, token(rs, ENTRA_HEADER, entra_claims(clock, tid="tenant-c", roles=["r"])), "untrusted issuer")
    # iss of an allowed tenant, tid of another one: the iss must be the template filled with the token's tid.
    mixed = entra_claims(
        clock, tid="tenant-b", roles=["r"], iss="https://login.microsoftonline.com/tenant-a/v2.0"
    )
    refused(v, token(rs, ENTRA_HEADER, mixed), "tenant not allowed")
    # The raw template is not an issuer.
    raw = entra_claims(
        clock, roles=["r"], iss="https://login.microsoftonline.com/{tenantid}/v2.0", tid="{tenantid}"
    )
    refused(v, token(rs, ENTRA_HEADER, raw), "untrusted issuer")


# -- Okta, Auth0, Cognito, Keycloak ----------------------------------------------------------------


def test_okta(keyring: dict[str, SigningKey], clock: FakeClock) -> None:
    rs = keyring["rs"]
    config = VerifierConfig.for_okta("dev-1.okta.com")
    v = verifier_for(config, rs, clock)
    now = int(clock.now())
    access = {
        "ver": 1, "jti": "AT.1", "iss": config.issuer, "aud": "api://default", "iat": now, "exp": now + 3600,
        "cid": "0oa1", "scp": ["orders.read"], "sub": "0oa1",
    }  # fmt: skip
    assert ok(v, token(rs, {}, access)).scopes == {"orders.read"}
    id_token = {
        "ver": 1, "sub": "00u1", "iss": config.issuer, "aud": "0oa1", "iat": now, "exp": now + 3600,
        "jti": "ID.1", "amr": ["pwd"], "idp": "00o1", "nonce": "n", "auth_time": now, "at_hash": "x",
    }  # fmt: skip
    refused(v, token(rs, {}, id_token))
    refused(v, token(rs, {}, id_token | {"aud": "api://default"}))


def test_auth0(keyring: dict[str, SigningKey], clock: FakeClock) -> None:
    rs = keyring["rs"]
    config = VerifierConfig.for_auth0("tenant.eu.auth0.com", "https://orders.example")
    v = verifier_for(config, rs, clock)
    now = int(clock.now())
    access = {
        "iss": "https://tenant.eu.auth0.com/", "sub": "abc@clients", "aud": "https://orders.example",
        "iat": now, "exp": now + 86400, "gty": "client-credentials", "azp": "abc", "scope": "read:orders",
    }  # fmt: skip
    assert ok(v, token(rs, {"typ": "JWT"}, access)).scopes == {"read:orders"}
    ok(v, token(rs, {"typ": "at+jwt"}, access | {"jti": "2"}))
    refused(v, token(rs, {"typ": "JWT"}, access | {"aud": "client-id", "nonce": "n"}))
    ps = keyring["ps"]
    refused(verifier_for(config, ps, clock), token(ps, {"typ": "JWT"}, access), "unknown key")


def test_cognito(keyring: dict[str, SigningKey], clock: FakeClock) -> None:
    rs = keyring["rs"]
    config = VerifierConfig.for_cognito("eu-west-1", "eu-west-1_Pool", "client-1")
    v = verifier_for(config, rs, clock)
    now = int(clock.now())
    access = {
        "sub": "client-1", "token_use": "access", "scope": "orders/read", "auth_time": now,
        "iss": config.issuer, "exp": now + 3600, "iat": now, "version": 2, "jti": "j",
        "client_id": "client-1",
    }  # fmt: skip
    p = ok(v, token(rs, {}, access))
    assert p.client_id == "client-1" and p.scopes == {"orders/read"}
    refused(v, token(rs, {}, access | {"client_id": "client-2", "jti": "k"}), "invalid audience")
    id_token = {
        "sub": "u", "aud": "client-1", "token_use": "id", "auth_time": now, "iss": config.issuer,
        "exp": now + 3600, "iat": now, "cognito:username": "u", "email": "u@x",
    }  # fmt: skip
    refused(v, token(rs, {}, id_token))
    refused(v, token(rs, {}, id_token | {"client_id": "client-1"}), "claim assertion failed")


def test_keycloak(keyring: dict[str, SigningKey], clock: FakeClock) -> None:
    rs = keyring["rs"]
    config = VerifierConfig.for_keycloak("https://kc.example", "acme", "orders")
    v = verifier_for(config, rs, clock)
    now = int(clock.now())
    access = {
        "exp": now + 300, "iat": now, "jti": "j", "iss": config.issuer, "aud": ["orders", "account"],
        "sub": "sa-1", "typ": "Bearer", "azp": "billing", "scope": "profile orders",
        "realm_access": {"roles": ["x"]},
    }  # fmt: skip
    assert ok(v, token(rs, {"typ": "JWT"}, access)).scopes == {"profile", "orders"}
    refused(v, token(rs, {"typ": "JWT"}, access | {"typ": "ID", "nonce": "n"}), "claim assertion failed")
    refused(v, token(rs, {"typ": "JWT"}, access | {"typ": "Refresh"}), "claim assertion failed")


# -- assertions, lifetime, revocation, ID tokens -----------------------------------------------------


def test_claim_assertions_values_and_predicates(server: JwksServer, clock: FakeClock, mint: Mint) -> None:
    config = VerifierConfig.for_s2s(
        ISSUER,
        AUDIENCE,
        claim_assertions={"ver": 2, "groups": lambda g: isinstance(g, list) and "ops" in g},
    )
    v = TokenVerifier(config, http_client=server.async_client(), clock=clock)
    ok(v, mint(ver=2, groups=["ops", "dev"]))
    refused(v, mint(ver="2", groups=["ops"]), "claim assertion failed")
    refused(v, mint(ver=True, groups=["ops"]), "claim assertion failed")
    refused(v, mint(ver=2, groups=["dev"]), "claim assertion failed")
    refused(v, mint(ver=2), "claim assertion failed")

    def boom(value: Any) -> bool:
        raise RuntimeError("predicate bug")

    v2 = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, claim_assertions={"x": boom}),
        http_client=server.async_client(),
        clock=clock,
    )
    refused(v2, mint(x=1), "token invalid")


def test_max_lifetime_and_age(server: JwksServer, clock: FakeClock, mint: Mint) -> None:
    v = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, max_lifetime=600, max_token_age=900),
        http_client=server.async_client(),
        clock=clock,
    )
    now = int(clock.now())
    ok(v, mint(exp=now + 600))
    refused(v, mint(exp=now + 601), "token lifetime too long")
    refused(v, mint(iat=now - 1000, nbf=now - 1000, exp=now + 60), "token too old")


@pytest.mark.parametrize("kind", ["sync-true", "async-true", "raises", "sync-false", "async-false"])
def test_revocation_hook(kind: str, server: JwksServer, clock: FakeClock, mint: Mint) -> None:
    seen: list[Principal] = []

    def sync_check(p: Principal) -> bool:
        seen.append(p)
        if kind == "raises":
            raise RuntimeError("revocation store down")
        return kind == "sync-true"

    async def async_check(p: Principal) -> bool:
        seen.append(p)
        return kind == "async-true"

    check = async_check if kind.startswith("async") else sync_check
    v = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, revocation_check=check),
        http_client=server.async_client(),
        clock=clock,
    )
    if kind.endswith("false"):
        assert ok(v, mint()).subject == "billing-service"
    else:
        refused(v, mint(), "token revoked" if kind != "raises" else "token invalid")
    assert len(seen) == 1 and seen[0].token_id == "token-1"


def test_sync_verifier_refuses_async_revocation_hook(
    server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    async def check(p: Principal) -> bool:
        return False

    v = SyncTokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, revocation_check=check),
        http_client=server.sync_client(),
        clock=clock,
    )
    with pytest.raises(InvalidToken, match="revocation check unavailable"):
        v.verify(mint())


def test_id_token_with_nonce(key: SigningKey, server: JwksServer, clock: FakeClock) -> None:
    v = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, "web-client"), http_client=server.async_client(), clock=clock
    )
    now = int(clock.now())
    claims = {"iss": ISSUER, "sub": "u1", "aud": "web-client", "iat": now, "exp": now + 300, "nonce": "n-123"}
    id_token = token(key, {"typ": "JWT"}, claims)
    assert asyncio.run(v.verify_id_token(id_token, nonce="n-123")).subject == "u1"
    for bad in ("n-124", ""):
        with pytest.raises(InvalidClaim, match="nonce mismatch"):
            asyncio.run(v.verify_id_token(id_token, nonce=bad))
    with pytest.raises(InvalidAudience, match="invalid audience"):
        asyncio.run(v.verify_id_token(id_token, client_id="other-client"))
    # An ID token is not an access token, and an access token is not an ID token.
    with pytest.raises(WrongTokenType, match="wrong token type"):
        asyncio.run(v.verify(id_token))
    access = token(key, {"typ": "at+jwt"}, claims)
    with pytest.raises(WrongTokenType, match="wrong token type"):
        asyncio.run(v.verify_id_token(access))
    # Several audiences: azp must name this client.
    multi = token(key, {}, claims | {"aud": ["web-client", "other"], "azp": "other"})
    with pytest.raises(InvalidAudience, match="invalid audience"):
        asyncio.run(v.verify_id_token(multi))
    sync = SyncTokenVerifier(
        VerifierConfig.for_s2s(ISSUER, "web-client"), http_client=server.sync_client(), clock=clock
    )
    assert sync.verify_id_token(id_token, nonce="n-123").subject == "u1"
    with pytest.raises(InvalidToken):
        sync.verify_id_token(id_token, nonce="x")
