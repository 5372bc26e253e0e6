"""VerifierConfig: refused settings, presets and from_env."""

from __future__ import annotations

import pytest

from s2s.errors import ConfigError
from s2s.jose import AlgorithmPolicy, KeyRejected
from s2s.verify import VerifierConfig
from tests.verify.conftest import AUDIENCE, ISSUER


@pytest.mark.parametrize(
    "algs", [("none",), ("None",), ("HS256",), ("ES256", "HS512"), ("hs384",), ("ES512",), ()]
)
def test_none_hs_and_unsupported_algorithms_refused_at_build(algs: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError):
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, algorithms=algs)


def test_eddsa_in_allowlist_means_ed25519() -> None:
    assert VerifierConfig.for_s2s(ISSUER, AUDIENCE, algorithms=("EdDSA",)).algorithms == ("Ed25519",)


@pytest.mark.parametrize(
    "options",
    [
        {"leeway": 301},
        {"leeway": -1},
        {"extra_header_params": ("jku",)},
        {"extra_header_params": ("crit",)},
        {"token_types": ()},
        {"max_lifetime": 0},
        {"jwks_ttl": 10, "jwks_max_ttl": 5},
        {"jwks_min_ttl": 0},
        {"max_keys": 0},
        {"revocation_check": "yes"},
    ],
)
def test_invalid_settings_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, **options)


def test_audience_and_issuer_required() -> None:
    with pytest.raises(ConfigError):
        VerifierConfig(issuer=ISSUER, audiences=())
    with pytest.raises(ConfigError):
        VerifierConfig(issuer="", audiences=("a",), jwks_uri="https://x.test/k")


def test_issuer_template_needs_tenants_and_jwks_uri() -> None:
    with pytest.raises(ConfigError):
        VerifierConfig(
            issuer="https://login.microsoftonline.com/{tenantid}/v2.0",
            audiences=("a",),
            jwks_uri="https://x.test/k",
        )
    with pytest.raises(ConfigError):
        VerifierConfig(
            issuer="https://login.microsoftonline.com/{tenantid}/v2.0",
            audiences=("a",),
            allowed_tenants=("t",),
        )


def test_key_pinning_rules() -> None:
    both = AlgorithmPolicy.of(["RS256", "PS256", "ES256", "Ed25519"])
    assert both.pin({"kty": "RSA"}) == "RS256"  # RSA without alg: RS256 when allowed
    assert AlgorithmPolicy.of(["PS256"]).pin({"kty": "RSA"}) == "PS256"
    assert both.pin({"kty": "RSA", "alg": "PS256"}) == "PS256"
    assert both.pin({"kty": "EC", "crv": "P-256"}) == "ES256"
    assert both.pin({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA"}) == "Ed25519"
    for jwk in (
        {"kty": "OKP", "crv": "Ed448"},
        {"kty": "OKP", "crv": "Ed448", "alg": "EdDSA"},
        {"kty": "EC", "crv": "P-384"},
        {"kty": "EC", "crv": "P-256", "alg": "RS256"},
        {"kty": "RSA", "alg": "ES256"},
        {"kty": "RSA", "alg": "HS256"},
        {"kty": "oct", "alg": "HS256"},
    ):
        with pytest.raises(KeyRejected):
            both.pin(jwk)
    with pytest.raises(KeyRejected):
        AlgorithmPolicy.of(["ES256"]).pin({"kty": "RSA"})


def test_presets_shape() -> None:
    s2s = VerifierConfig.for_s2s(ISSUER + "/", AUDIENCE)
    assert (
        s2s.issuer == ISSUER
        and s2s.jwks_uri == f"{ISSUER}/.well-known/jwks.json"
        and s2s.token_types == ("at+jwt",)
    )
    entra = VerifierConfig.for_entra("tid-1", "api-client-id")
    assert entra.issuer == "https://login.microsoftonline.com/tid-1/v2.0"
    assert entra.jwks_uri == "https://login.microsoftonline.com/tid-1/discovery/v2.0/keys"
    assert entra.token_types == ("jwt",) and entra.allowed_tenants == ("tid-1",)
    multi = VerifierConfig.for_entra("organizations", "api", allowed_tenants=["t1", "t2"])
    assert multi.issuer == "https://login.microsoftonline.com/{tenantid}/v2.0"
    okta = VerifierConfig.for_okta("dev-1.okta.com")
    assert okta.issuer == "https://dev-1.okta.com/oauth2/default" and okta.audiences == ("api://default",)
    assert okta.jwks_uri == "https://dev-1.okta.com/oauth2/default/v1/keys"
    auth0 = VerifierConfig.for_auth0("t.eu.auth0.com", "https://api.example")
    assert auth0.issuer == "https://t.eu.auth0.com/" and auth0.algorithms == ("RS256",)
    cognito = VerifierConfig.for_cognito("eu-west-1", "eu-west-1_AbC", ("client-1",))
    assert cognito.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"
    assert cognito.audience_claim == "client_id" and cognito.claim_assertions["token_use"] == "access"
    kc = VerifierConfig.for_keycloak("https://kc.example/", "acme", "orders")
    assert kc.issuer == "https://kc.example/realms/acme"
    assert kc.jwks_uri == "https://kc.example/realms/acme/protocol/openid-connect/certs"
    disc = VerifierConfig.from_discovery(ISSUER, AUDIENCE)
    assert disc.jwks_uri is None
    with pytest.raises(ConfigError):
        VerifierConfig.from_discovery("http://idp.example", AUDIENCE)  # discovery over plain http


def test_config_is_frozen() -> None:
    config = VerifierConfig.for_s2s(ISSUER, AUDIENCE)
    with pytest.raises(AttributeError):
        config.leeway = 0  # type: ignore[misc]


def test_from_env() -> None:
    env = {
        "S2S_VERIFIER_ISSUER": ISSUER,
        "S2S_VERIFIER_AUDIENCE": "a, b",
        "S2S_VERIFIER_JWKS_URI": "https://issuer.test/keys",
        "S2S_VERIFIER_ALGORITHMS": "ES256 RS256",
        "S2S_VERIFIER_LEEWAY": "10",
        "S2S_VERIFIER_MAX_LIFETIME": "3600",
        "S2S_VERIFIER_TOKEN_TYPES": "at+jwt,none",
    }
    config = VerifierConfig.from_env(environ=env)
    assert config.audiences == ("a", "b") and config.leeway == 10 and config.max_lifetime == 3600
    assert config.algorithms == ("ES256", "RS256") and config.token_types == ("at+jwt", "")
    discovered = VerifierConfig.from_env(
        environ={"S2S_VERIFIER_ISSUER": ISSUER, "S2S_VERIFIER_AUDIENCE": "a"}
    )
    assert discovered.jwks_uri is None


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"S2S_VERIFIER_ISSUER": ISSUER},
        {"S2S_VERIFIER_ISSUER": ISSUER, "S2S_VERIFIER_AUDIENCE": "a", "S2S_VERIFIER_LEEWAY": "soon"},
        {"S2S_VERIFIER_ISSUER": ISSUER, "S2S_VERIFIER_AUDIENCE": "a", "S2S_VERIFIER_ALGORITHMS": "HS256"},
    ],
)
def test_from_env_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        VerifierConfig.from_env(environ=env)
    assert "S2S_VERIFIER_" in str(info.value) or "HS256" in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        "LEEWAY",
        "MAX_TOKEN_AGE",
        "MAX_LIFETIME",
        "JWKS_TTL",
        "REFETCH_COOLDOWN",
        "MAX_STALENESS",
        "HTTP_TIMEOUT",
    ],
)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_durations_refused(name: str, value: str) -> None:
    # float("nan") compares false with everything: a NaN max_token_age or max_lifetime would
    # switch its check off, a NaN refetch_cooldown would drop the refetch limit.
    env = {"S2S_VERIFIER_ISSUER": ISSUER, "S2S_VERIFIER_AUDIENCE": AUDIENCE, f"S2S_VERIFIER_{name}": value}
    with pytest.raises(ConfigError) as info:
        VerifierConfig.from_env(environ=env)
    assert name.lower() in str(info.value)
