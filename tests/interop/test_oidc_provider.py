"""The s2s plugin against a real OpenID provider: npm ``oidc-provider`` (OpenID-certified), Node.

The plugin is configured only with ``VerifierConfig.from_discovery(<provider issuer>, audience)``:
everything else (the JWKS location, the keys, their algorithms) comes from the provider.
"""

from __future__ import annotations

import logging

import httpx
import jwt
import pytest
from litestar.testing import TestClient

from tests.interop.conftest import (
    ACCOUNT,
    CLIENT_ID,
    RESOURCES,
    RP_CLIENT_ID,
    OidcProvider,
    ProviderKeys,
    ResourceService,
)

__all__: list[str] = []


def _assert_refused(
    response: httpx.Response, token: str, caplog: pytest.LogCaptureFixture, reason: str
) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge and reason in challenge, challenge
    assert response.headers["cache-control"] == "no-store"
    for part in token.split("."):
        assert part not in response.text, "token leaked into the response body"
        assert part not in str(dict(response.headers)), "token leaked into the response headers"
        assert part not in caplog.text, "token leaked into the logs"


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_plugin_accepts_the_providers_access_tokens(oidc_provider: OidcProvider, resource: str) -> None:
    alg = RESOURCES[resource]
    token = oidc_provider.client_credentials(resource)
    header = jwt.get_unverified_header(token)
    ran = f"{oidc_provider.label}, {alg} access token"
    print(ran)
    assert header["alg"] == alg and header["typ"] == "at+jwt", f"{ran}: {header}"
    assert header["kid"] == oidc_provider.keys.kid_for(alg), ran

    service = ResourceService(oidc_provider.issuer, resource, oidc_provider.ca)
    with TestClient(service.app()) as client:
        response = client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (
            f"{ran}: {response.status_code} {response.headers} {response.text}"
        )
        assert response.json() == {
            "sub": CLIENT_ID,
            "iss": oidc_provider.issuer,
            "aud": [resource],
            "client_id": CLIENT_ID,
            "scopes": ["api:read"],
        }, ran
        # Discovery found the provider's JWKS: one discovery document, one key set, no guessing.
        assert service.fetched == [
            f"{oidc_provider.issuer}/.well-known/openid-configuration",
            oidc_provider.metadata()["jwks_uri"],
        ], ran

        # The same provider's token for another resource is not for this API.
        other = next(r for r in RESOURCES if r != resource)
        foreign = oidc_provider.client_credentials(other)
        response = client.get("/whoami", headers={"Authorization": f"Bearer {foreign}"})
        assert response.status_code == 401 and "invalid audience" in response.headers["www-authenticate"], ran


def test_plugin_refuses_the_providers_id_tokens(
    oidc_provider: OidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """An ID token from a real authorization-code flow is refused as an access token, even by a
    service that (wrongly) lists the relying party's client id among its audiences: the refusal
    rests on the token type (RFC 9068 ``typ: at+jwt``), not only on the audience."""
    caplog.set_level(logging.DEBUG)
    id_token = oidc_provider.id_token()
    header = jwt.get_unverified_header(id_token)
    claims = jwt.decode(id_token, options={"verify_signature": False})
    ran = f"{oidc_provider.label}, ID token {header}"
    print(ran)
    assert claims["aud"] == RP_CLIENT_ID and claims["sub"] == ACCOUNT and "nonce" in claims, ran
    assert header.get("typ") in (None, "JWT"), ran
    # It is a genuine token of this provider: PyJWT verifies it against the provider's JWKS.
    keys = jwt.PyJWKClient(
        oidc_provider.metadata()["jwks_uri"], ssl_context=oidc_provider.ca.client_context()
    )
    jwt.decode(
        id_token,
        keys.get_signing_key_from_jwt(id_token).key,
        algorithms=[header["alg"]],
        audience=RP_CLIENT_ID,
        issuer=oidc_provider.issuer,
    )

    resource = next(iter(RESOURCES))
    for audience in (resource, (resource, RP_CLIENT_ID)):
        service = ResourceService(oidc_provider.issuer, audience, oidc_provider.ca)
        with TestClient(service.app()) as client:
            response = client.get("/whoami", headers={"Authorization": f"Bearer {id_token}"})
            _assert_refused(response, id_token, caplog, "wrong token type")


def test_plugin_follows_a_key_rotation_of_the_provider(
    own_oidc_provider: OidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """The provider restarts with a new key set (old keys removed). The running service has the old
    keys cached and still fresh; the first token signed by an unknown kid makes it refetch the
    provider's JWKS once, after which the removed keys are no longer trusted."""
    caplog.set_level(logging.DEBUG)
    provider = own_oidc_provider
    resources = list(RESOURCES)
    # A cooldown of 0: the restart happens within a second, and the test must not wait it out.
    service = ResourceService(provider.issuer, tuple(resources), provider.ca, {"refetch_cooldown": 0.0})
    old_keys = provider.keys
    old_verified = {r: provider.client_credentials(r) for r in resources}
    old_unseen = {r: provider.client_credentials(r) for r in resources}
    with TestClient(service.app()) as client:

        def get(token: str) -> httpx.Response:
            return client.get("/whoami", headers={"Authorization": f"Bearer {token}"})

        for resource, token in old_verified.items():
            assert get(token).status_code == 200, f"{provider.label}: {RESOURCES[resource]}"
        assert service.jwks_fetches() == 1

        new_keys = ProviderKeys.generate()
        assert not new_keys.kids & old_keys.kids
        provider.restart(new_keys)
        ran = f"{provider.label} restarted with new keys"
        print(ran)
        for resource in resources:
            token = provider.client_credentials(resource)
            alg = RESOURCES[resource]
            assert jwt.get_unverified_header(token)["kid"] == new_keys.kid_for(alg), ran
            response = get(token)
            assert response.status_code == 200, f"{ran}: {alg}: {response.headers}"
        # One refetch, caused by the first unknown kid; the other new kids came with it.
        assert service.jwks_fetches() == 2, f"{ran}: {service.fetched}"

        # Tokens of the removed keys that the service never saw are refused now.
        for token in old_unseen.values():
            _assert_refused(get(token), token, caplog, "unknown key")
