"""RFC 8414 authorization server metadata (also served as ``openid-configuration``)."""

from __future__ import annotations

from typing import Any

from s2s.issuer.settings import IssuerSettings
from s2s.jose import CLIENT_ASSERTION_ALGS
from s2s.keys.model import SIGNING_ALGS

__all__ = ["AUTH_METHODS", "server_metadata"]

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


def server_metadata(settings: IssuerSettings) -> dict[str, Any]:
    return {
        "issuer": settings.issuer,
        "token_endpoint": settings.token_endpoint,
        "jwks_uri": settings.jwks_uri,
        "grant_types_supported": ["client_credentials"],
        # No authorization endpoint: there is no user-facing flow, hence no response type.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": sorted(
            {alg for algs in CLIENT_ASSERTION_ALGS.values() for alg in algs}
        ),
        "access_token_signing_alg_values_supported": list(SIGNING_ALGS),
        "resource_indicators_supported": True,
        "subject_types_supported": ["public"],
    }
