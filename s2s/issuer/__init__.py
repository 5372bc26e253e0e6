"""The token issuer: clients, their registries, client authentication, minting, keys, the endpoint.

Framework-free. :func:`build_issuer` assembles one from :class:`IssuerSettings`; the Litestar app
that serves it is :func:`s2s.litestar.issuer.create_issuer_app`. Module map:

* :mod:`~s2s.issuer._clients` the client model; ``_secret_hash`` secrets and their hashes;
  ``_federation`` federated credentials (presets, matching), ``_federation_verify`` their check;
  ``_registry`` the registries (memory, file), :mod:`~s2s.issuer._aws_clients` the Secrets Manager one;
* ``_form`` reading a token request (form body, presented credentials), :mod:`~s2s.issuer._assertion`
  ``private_key_jwt``; :mod:`~s2s.issuer._token` the endpoint, the one place errors become OAuth answers;
* :mod:`~s2s.issuer._minter` the RFC 9068 claims, :mod:`~s2s.issuer._keyring` the key manager;
* :mod:`~s2s.issuer._state` replay and rate state (:mod:`~s2s.issuer._dynamodb` shared),
  :mod:`~s2s.issuer._ratelimit`; :mod:`~s2s.issuer.errors` the error tree;
* :mod:`~s2s.issuer._settings` the settings, ``_compose`` the composition root.
"""

from __future__ import annotations

from s2s.issuer._assertion import AssertionVerifier, InMemoryReplayCache, InvalidAssertion, ReplayCache
from s2s.issuer._aws_clients import SecretsManagerClientRegistry
from s2s.issuer._clients import Client, new_client
from s2s.issuer._compose import IssuerParts, IssuerRuntime, build_issuer, create_first_keys
from s2s.issuer._dynamodb import DynamoDBState, create_state_table
from s2s.issuer._federation import (
    FederatedCredential,
    github_credential,
    kubernetes_credential,
    spiffe_credential,
)
from s2s.issuer._federation_verify import FederationVerifier
from s2s.issuer._form import parse_form
from s2s.issuer._keyring import KeyManager, Readiness
from s2s.issuer._metadata import server_metadata
from s2s.issuer._minter import Minter
from s2s.issuer._ratelimit import RateLimiter, TokenBucketLimiter
from s2s.issuer._registry import (
    REGISTRY_FORMAT,
    ClientRegistry,
    FileClientRegistry,
    InMemoryClientRegistry,
    ManagedClientRegistry,
    open_client_registry,
)
from s2s.issuer._secret_hash import SecretVerifier, StoredSecret, generate_secret, hash_secret, verify_secret
from s2s.issuer._settings import IssuerSettings
from s2s.issuer._state import InMemoryState, IssuerState, SQLiteState, open_state
from s2s.issuer._token import TokenEndpoint, TokenResponse
from s2s.issuer.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidScope,
    InvalidTarget,
    InvalidTokenRequest,
    OAuthError,
    RegistryError,
    RegistryUnavailable,
    ServerError,
    SlowDown,
    StateUnavailable,
    TemporarilyUnavailable,
    UnsupportedGrantType,
)

__all__ = [
    "REGISTRY_FORMAT",
    "AssertionVerifier",
    "Client",
    "ClientRegistry",
    "DynamoDBState",
    "FederatedCredential",
    "FederationVerifier",
    "FileClientRegistry",
    "InMemoryClientRegistry",
    "InMemoryReplayCache",
    "InMemoryState",
    "InvalidAssertion",
    "InvalidClient",
    "InvalidGrant",
    "InvalidScope",
    "InvalidTarget",
    "InvalidTokenRequest",
    "IssuerParts",
    "IssuerRuntime",
    "IssuerSettings",
    "IssuerState",
    "KeyManager",
    "ManagedClientRegistry",
    "Minter",
    "OAuthError",
    "RateLimiter",
    "Readiness",
    "RegistryError",
    "RegistryUnavailable",
    "ReplayCache",
    "SQLiteState",
    "SecretVerifier",
    "SecretsManagerClientRegistry",
    "ServerError",
    "SlowDown",
    "StateUnavailable",
    "StoredSecret",
    "TemporarilyUnavailable",
    "TokenBucketLimiter",
    "TokenEndpoint",
    "TokenResponse",
    "UnsupportedGrantType",
    "build_issuer",
    "create_first_keys",
    "create_state_table",
    "generate_secret",
    "github_credential",
    "hash_secret",
    "kubernetes_credential",
    "new_client",
    "open_client_registry",
    "open_state",
    "parse_form",
    "server_metadata",
    "spiffe_credential",
    "verify_secret",
]
