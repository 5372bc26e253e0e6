"""Three independent parties: MSAL (Python) obtains client-credentials tokens from ``oidc-provider``
(Node) through ``oidc_authority``, and the s2s plugin accepts them.

MSAL asks for a resource only as ``scope=<resource>/.default`` (the Entra ID convention); the
provider's ``defaultResource`` maps that scope onto its resource indicator (see provider.mjs).
"""

from __future__ import annotations

import jwt
import msal
import pytest
from litestar.testing import TestClient

from tests.interop.conftest import CLIENT_ID, RESOURCES, OidcProvider, ResourceService

__all__: list[str] = []


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_msal_tokens_from_the_provider_are_accepted_by_the_plugin(
    oidc_provider: OidcProvider, resource: str
) -> None:
    alg = RESOURCES[resource]
    ran = f"MSAL {msal.__version__} -> {oidc_provider.label} -> s2s plugin, {alg}"
    print(ran)
    # trust_env=False: REQUESTS_CA_BUNDLE is set on these machines and would override verify=.
    session = oidc_provider.ca.session()
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=oidc_provider.client_secret,
        oidc_authority=oidc_provider.issuer,
        http_client=session,
    )
    try:
        result = app.acquire_token_for_client(scopes=[f"{resource}/.default"])
        assert "access_token" in result, f"{ran}: {result.get('error')}: {result.get('error_description')}"
        assert result["token_source"] == "identity_provider", ran
        token = result["access_token"]
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert header["alg"] == alg and header["typ"] == "at+jwt", f"{ran}: {header}"
        assert claims["aud"] == resource and claims["client_id"] == CLIENT_ID, f"{ran}: {claims}"
        # MSAL serves the same token from its cache while it has more than 5 minutes left (the
        # provider issues them for 15).
        again = app.acquire_token_for_client(scopes=[f"{resource}/.default"])
        assert again["token_source"] == "cache" and again["access_token"] == token, ran
    finally:
        session.close()

    service = ResourceService(oidc_provider.issuer, resource, oidc_provider.ca)
    with TestClient(service.app()) as client:
        response = client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, f"{ran}: {response.status_code} {response.headers}"
    body = response.json()
    assert body["client_id"] == CLIENT_ID and body["aud"] == [resource], f"{ran}: {body}"
    assert body["iss"] == oidc_provider.issuer, ran


def test_msal_reports_an_unknown_resource_as_an_error(oidc_provider: OidcProvider) -> None:
    """The mapping is not a catch-all: a `.default` scope of a resource the provider does not serve
    gets an OAuth error through MSAL, not a token."""
    ran = f"MSAL {msal.__version__} -> {oidc_provider.label}"
    session = oidc_provider.ca.session()
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=oidc_provider.client_secret,
        oidc_authority=oidc_provider.issuer,
        http_client=session,
    )
    try:
        result = app.acquire_token_for_client(scopes=["https://unknown.api.interop.test/.default"])
    finally:
        session.close()
    assert "access_token" not in result, ran
    assert result.get("error") in {"invalid_target", "invalid_scope"}, f"{ran}: {result}"
