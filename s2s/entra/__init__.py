"""Entra ID (MSAL) client credentials and on-behalf-of for async services, and Microsoft Graph."""

from __future__ import annotations

from s2s.entra.app import (
    AZURE_CHINA,
    AZURE_PUBLIC_CLOUD,
    AZURE_US_GOVERNMENT,
    AccessToken,
    EntraApp,
    EntraConfig,
)
from s2s.entra.cache import FileTokenCache, MemoryTokenCache, TokenCachePersistence
from s2s.entra.challenge import claims_challenge_header, parse_claims_challenge
from s2s.entra.credentials import CertificateCredential, ClientSecret, Credential, PfxCredential
from s2s.entra.errors import (
    EntraError,
    EntraThrottled,
    EntraUnavailable,
    GraphError,
    GraphForbidden,
    GraphNotFound,
    GraphThrottled,
    GraphUnauthorized,
    GraphUnavailable,
    InteractionRequired,
    InvalidClient,
    InvalidGrant,
    InvalidScope,
)
from s2s.entra.graph import GRAPH_V1, GraphClient

__all__ = [
    "AZURE_CHINA",
    "AZURE_PUBLIC_CLOUD",
    "AZURE_US_GOVERNMENT",
    "GRAPH_V1",
    "AccessToken",
    "CertificateCredential",
    "ClientSecret",
    "Credential",
    "EntraApp",
    "EntraConfig",
    "EntraError",
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
    "InteractionRequired",
    "InvalidClient",
    "InvalidGrant",
    "InvalidScope",
    "MemoryTokenCache",
    "PfxCredential",
    "TokenCachePersistence",
    "claims_challenge_header",
    "parse_claims_challenge",
]
