"""Discovery documents: RFC 8414 authorization server metadata and OpenID Connect Discovery 1.0.

The issuer has no login, so it has no real authorization endpoint. OpenID Connect Discovery §3
still marks ``authorization_endpoint``, ``response_types_supported`` (non-empty),
``subject_types_supported`` and ``id_token_signing_alg_values_supported`` REQUIRED, and OIDC
clients (MSAL Node in ``protocolMode: "OIDC"``, MSAL Python's ``oidc_authority``) refuse a
document without them. The values below are honest for an issuer without users:

* ``authorization_endpoint`` exists and answers every request with an RFC 6749 error
  (:func:`authorization_error`): never a redirect (no redirect URI is registered, so none can be
  trusted, RFC 6749 §4.1.2.1), never a page, never user data;
* ``response_types_supported`` is ``["none"]`` (OAuth 2.0 Multiple Response Type Encoding
  Practices §4): the one registered response type that issues no credential. Even that one is
  refused with ``access_denied``: there is no resource owner to grant anything;
* ``id_token_signing_alg_values_supported`` lists the algorithms our keys sign with (RS256, which
  the specification requires to be listed, among them); no ID token is ever issued.

The RFC 8414 document keeps to what RFC 8414 asks of a server without an authorization endpoint
(``response_types_supported: []``, no ``authorization_endpoint``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from s2s.issuer._settings import IssuerSettings
from s2s.jose import CLIENT_ASSERTION_ALGS
from s2s.keys._model import SIGNING_ALGS

__all__ = [
    "AUTHORIZE_PATH",
    "AUTH_METHODS",
    "OPENID_CONFIGURATION_PATH",
    "authorization_error",
    "openid_configuration",
    "server_metadata",
]

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
AUTHORIZE_PATH: Final = "/oauth2/authorize"
OPENID_CONFIGURATION_PATH: Final = "/.well-known/openid-configuration"
# The only response type we name; see the module docstring.
RESPONSE_TYPES: Final = ("none",)


def server_metadata(settings: IssuerSettings) -> dict[str, Any]:
    """RFC 8414 metadata (``/.well-known/oauth-authorization-server``)."""
    return {
        "issuer": settings.issuer,
        "token_endpoint": settings.token_endpoint,
        "jwks_uri": settings.jwks_uri,
        "grant_types_supported": ["client_credentials"],
        # No authorization endpoint in RFC 8414's sense: no grant type here uses one.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": sorted(
            {alg for algs in CLIENT_ASSERTION_ALGS.values() for alg in algs}
        ),
        "access_token_signing_alg_values_supported": list(SIGNING_ALGS),
        "resource_indicators_supported": True,
        "subject_types_supported": ["public"],
    }


def openid_configuration(settings: IssuerSettings) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 metadata (``/.well-known/openid-configuration``): the RFC 8414
    members plus every member §3 marks REQUIRED, with the values the module docstring explains."""
    return {
        **server_metadata(settings),
        "authorization_endpoint": settings.issuer + AUTHORIZE_PATH,
        "response_types_supported": list(RESPONSE_TYPES),
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(SIGNING_ALGS),
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"],
        "request_uri_parameter_supported": False,
    }


def authorization_error(params: Mapping[str, str]) -> tuple[int, bytes]:
    """The answer of the authorization endpoint to any request: status and RFC 6749 §4.1.2.1 JSON.

    No redirect (no redirect URI can be validated), no echo of any parameter (a ``state`` or a
    ``redirect_uri`` is never reflected)."""
    response_type = params.get("response_type")
    if not response_type:
        error, description = "invalid_request", "response_type is required"
    elif response_type.strip() in RESPONSE_TYPES:
        error, description = "access_denied", "this issuer has no users: nothing can be authorized"
    else:
        error, description = (
            "unsupported_response_type",
            "this issuer issues tokens only to clients, at its token endpoint (client_credentials)",
        )
    body = json.dumps({"error": error, "error_description": description}, separators=(",", ":"))
    return 400, body.encode()
