"""Litestar adapters: the verifier plugin and its requirements (guards), and the issuer app."""

from __future__ import annotations

from s2s.litestar._challenge import WS_FORBIDDEN, WS_INVALID_REQUEST, WS_TRY_AGAIN_LATER, WS_UNAUTHENTICATED
from s2s.litestar._guards import (
    Requirement,
    principal_of,
    requires_any_role,
    requires_any_scope,
    requires_features,
    requires_permissions,
    requires_roles,
    requires_scopes,
)
from s2s.litestar._middleware import WS_BEARER_PROTOCOL, S2SAuthMiddleware
from s2s.litestar._plugin import OptionalPrincipalDep, PrincipalDep, S2SAuthPlugin, provide_principal

__all__ = [
    "WS_BEARER_PROTOCOL",
    "WS_FORBIDDEN",
    "WS_INVALID_REQUEST",
    "WS_TRY_AGAIN_LATER",
    "WS_UNAUTHENTICATED",
    "OptionalPrincipalDep",
    "PrincipalDep",
    "Requirement",
    "S2SAuthMiddleware",
    "S2SAuthPlugin",
    "principal_of",
    "provide_principal",
    "requires_any_role",
    "requires_any_scope",
    "requires_features",
    "requires_permissions",
    "requires_roles",
    "requires_scopes",
]
