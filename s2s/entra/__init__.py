"""Entra ID (MSAL) client credentials and on-behalf-of for async services, and Microsoft Graph.

Tokens come back as the one :class:`~s2s.oauth.AccessToken` (the s2s token client returns the same
type), a client secret is the one :class:`~s2s.client.ClientSecret`, and a federated token (workload
identity federation, no secret) the one :class:`~s2s.client.ClientAssertion`.
"""

from __future__ import annotations

from s2s.client._credentials import ClientAssertion, ClientSecret
from s2s.entra._app import (
    AZURE_CHINA,
    AZURE_PUBLIC_CLOUD,
    AZURE_US_GOVERNMENT,
    EntraApp,
    EntraConfig,
)
from s2s.entra._cache import FileTokenCache, MemoryTokenCache, TokenCachePersistence
from s2s.entra._challenge import claims_challenge_header, parse_claims_challenge
from s2s.entra._credentials import CertificateCredential, Credential, PfxCredential, federated_token_file
from s2s.entra._graph import GRAPH_V1, GraphClient
from s2s.entra.errors import (
    EntraError,
    EntraInteractionRequired,
    EntraInvalidClient,
    EntraInvalidGrant,
    EntraInvalidScope,
    EntraThrottled,
    EntraUnavailable,
    GraphError,
    GraphForbidden,
    GraphNotFound,
    GraphThrottled,
    GraphUnauthorized,
    GraphUnavailable,
)
from s2s.oauth import AccessToken

__all__ = [
    "AZURE_CHINA",
    "AZURE_PUBLIC_CLOUD",
    "AZURE_US_GOVERNMENT",
    "GRAPH_V1",
    "AccessToken",
    "CertificateCredential",
    "ClientAssertion",
    "ClientSecret",
    "Credential",
    "EntraApp",
    "EntraConfig",
    "EntraError",
    "EntraInteractionRequired",
    "EntraInvalidClient",
    "EntraInvalidGrant",
    "EntraInvalidScope",
    "EntraThrottled",
    "EntraUnavailable",
    "FileTokenCache",
    "GraphClient",
    "GraphError",
    "GraphForbidden",
    "GraphNotFound",
    "GraphThrottled",
    "GraphUnauthorized",
    "GraphUnavailable",
    "MemoryTokenCache",
    "PfxCredential",
    "TokenCachePersistence",
    "claims_challenge_header",
    "federated_token_file",
    "parse_claims_challenge",
]
