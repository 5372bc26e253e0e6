"""The token issuer: clients, their registries, client authentication, minting, keys, the endpoint.

Framework-free. :func:`build_issuer` assembles one from :class:`IssuerSettings`; the Litestar app
that serves it is :func:`s2s.litestar.issuer.create_issuer_app`. Module map:

* :mod:`~s2s.issuer.clients` the client model; ``_secret_hash`` secrets and their hashes;
  ``_registry`` the registries (memory, file), :mod:`~s2s.issuer.aws_clients` the Secrets Manager one;
* ``_form`` reading a token request (form body, presented credentials), :mod:`~s2s.issuer.assertion`
  ``private_key_jwt``; :mod:`~s2s.issuer.token` the endpoint, the one place errors become OAuth answers;
* :mod:`~s2s.issuer.minter` the RFC 9068 claims, :mod:`~s2s.issuer.keyring` the key manager;
* :mod:`~s2s.issuer.state` replay and rate state (:mod:`~s2s.issuer.dynamodb` shared),
  :mod:`~s2s.issuer.ratelimit`; :mod:`~s2s.issuer.errors` the error tree;
* :mod:`~s2s.issuer.settings` the settings, ``_compose`` the composition root.
"""

from __future__ import annotations

from s2s.issuer._compose import IssuerParts, IssuerRuntime, build_issuer, create_first_keys
from s2s.issuer._form import parse_form
from s2s.issuer._registry import (
    REGISTRY_FORMAT,
    ClientRegistry,
    FileClientRegistry,
    InMemoryClientRegistry,
    ManagedClientRegistry,
    open_client_registry,
)
from s2s.issuer._secret_hash import SecretVerifier, generate_secret, hash_secret, verify_secret
from s2s.issuer.assertion import AssertionVerifier, InMemoryReplayCache, InvalidAssertion, ReplayCache
from s2s.issuer.aws_clients import SecretsManagerClientRegistry
from s2s.issuer.clients import Client, new_client
from s2s.issuer.dynamodb import DynamoDBState, create_state_table
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
from s2s.issuer.keyring import KeyManager, Readiness
from s2s.issuer.metadata import server_metadata
from s2s.issuer.minter import Minter
from s2s.issuer.ratelimit import RateLimiter, TokenBucketLimiter
from s2s.issuer.settings import IssuerSettings
from s2s.issuer.state import InMemoryState, IssuerState, open_state
from s2s.issuer.token import TokenEndpoint, TokenResponse

__all__ = [
    "REGISTRY_FORMAT",
    "AssertionVerifier",
    "Client",
    "ClientRegistry",
    "DynamoDBState",
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
    "SecretVerifier",
    "SecretsManagerClientRegistry",
    "ServerError",
    "SlowDown",
    "StateUnavailable",
    "TemporarilyUnavailable",
    "TokenBucketLimiter",
    "TokenEndpoint",
    "TokenResponse",
    "UnsupportedGrantType",
    "build_issuer",
    "create_first_keys",
    "create_state_table",
    "generate_secret",
    "hash_secret",
    "new_client",
    "open_client_registry",
    "open_state",
    "parse_form",
    "server_metadata",
    "verify_secret",
]
