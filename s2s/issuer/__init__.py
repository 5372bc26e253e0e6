"""The token issuer: client registry, client authentication, minter, key manager, token endpoint.

Framework-free; the Litestar app that serves it is :func:`s2s.litestar.issuer.create_issuer_app`.
"""

from __future__ import annotations

from s2s.issuer.assertion import AssertionVerifier, InMemoryReplayCache, InvalidAssertion, ReplayCache
from s2s.issuer.clients import (
    Client,
    ClientRegistry,
    FileClientRegistry,
    InMemoryClientRegistry,
    SecretVerifier,
    hash_secret,
    new_client,
    open_client_registry,
    verify_secret,
)
from s2s.issuer.keyring import KeyManager
from s2s.issuer.metadata import server_metadata
from s2s.issuer.metrics import IssuerMetrics
from s2s.issuer.minter import MintedToken, Minter
from s2s.issuer.ratelimit import RateLimiter, TokenBucketLimiter
from s2s.issuer.settings import IssuerSettings
from s2s.issuer.token import OAuthError, TokenEndpoint, TokenResponse, parse_form

__all__ = [
    "AssertionVerifier",
    "Client",
    "ClientRegistry",
    "FileClientRegistry",
    "InMemoryClientRegistry",
    "InMemoryReplayCache",
    "InvalidAssertion",
    "IssuerMetrics",
    "IssuerSettings",
    "KeyManager",
    "MintedToken",
    "Minter",
    "OAuthError",
    "RateLimiter",
    "ReplayCache",
    "SecretVerifier",
    "TokenBucketLimiter",
    "TokenEndpoint",
    "TokenResponse",
    "hash_secret",
    "new_client",
    "open_client_registry",
    "parse_form",
    "server_metadata",
    "verify_secret",
]
