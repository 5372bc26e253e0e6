"""Litestar adapters: the verifier plugin and guards, and the issuer app."""

from __future__ import annotations

from s2s.litestar.guards import (
    principal_of,
    requires_features,
    requires_permissions,
    requires_roles,
    requires_scopes,
)
from s2s.litestar.middleware import WS_FORBIDDEN, WS_INVALID_REQUEST, WS_UNAUTHENTICATED, S2SAuthMiddleware
from s2s.litestar.plugin import PrincipalDep, S2SAuthPlugin, provide_principal

__all__ = [
    "WS_FORBIDDEN",
    "WS_INVALID_REQUEST",
    "WS_UNAUTHENTICATED",
    "PrincipalDep",
    "S2SAuthMiddleware",
    "S2SAuthPlugin",
    "principal_of",
    "provide_principal",
    "requires_features",
    "requires_permissions",
    "requires_roles",
    "requires_scopes",
]
