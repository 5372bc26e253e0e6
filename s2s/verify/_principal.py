"""The verified caller.

Claim shapes accepted: ``scope`` (RFC 9068, space-separated) or ``scp`` (Entra/Okta, string or
list); ``roles`` and ``permissions`` as a list of strings or one string (one name); ``features``
as a list of names or as an object (ioserver-oidc: ``{"beta": true, "limit": 5}``), where a name is
enabled when its value is truthy. :attr:`Principal.features` holds the enabled names (what
``requires_features`` checks); :attr:`Principal.feature_values` the mapping as the token carried
it (a list becomes ``{name: True}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Principal"]


def _strings(value: Any, *, split: bool = False) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split()) if split else frozenset((value,))
    if isinstance(value, list | tuple):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def _features(value: Any) -> tuple[frozenset[str], Mapping[str, Any]]:
    """The enabled feature names and the feature mapping, from a list or an object claim."""
    if isinstance(value, Mapping):
        raw = {k: v for k, v in value.items() if isinstance(k, str)}
        return frozenset(k for k, v in raw.items() if v), MappingProxyType(raw)
    names = _strings(value)
    return names, MappingProxyType(dict.fromkeys(sorted(names), True))


# Not slotted: from_verified_claims fills the instance dict directly (the hot path of every verify).
@dataclass(frozen=True)
class Principal:
    subject: str
    issuer: str
    audience: tuple[str, ...]
    expires_at: float
    client_id: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    features: frozenset[str] = frozenset()
    tenant_id: str | None = None
    token_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    # The features claim as a mapping (object as sent; a list as {name: True}); see features.
    feature_values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """Build from already-verified claims. ``scp`` (Entra) wins over ``scope`` (RFC 9068)."""
        # A copy: the caller keeps its mapping and may change it later.
        return from_verified_claims(dict(claims), cls)


def from_verified_claims(claims: dict[str, Any], cls: type[Principal] = Principal) -> Principal:
    """The verifier's constructor, and :meth:`Principal.from_claims` for a dict nobody else holds
    (the verifier's freshly decoded payload): it is wrapped read-only instead of copied."""
    # Runs once per verified token: written for speed (no dataclass __init__, the instance dict
    # built as one literal, no work for absent claims), with the same result as the constructor.
    get = claims.get
    if _OPTIONAL_CLAIMS.isdisjoint(claims):
        # The usual token names none of the optional claims nor the alternative names: the same
        # result as the general branch below, in a few steps.
        scope_claim = get("scope")
        client_id, tenant, jti = get("client_id"), None, get("jti")
        roles = permissions = feature_names = _EMPTY
        feature_values = _NO_FEATURES
    else:
        scope_claim = claims["scp"] if "scp" in claims else get("scope")
        # The fallbacks are looked up only when the first name is absent (same result as
        # chained defaults, fewer lookups).
        client_id = get("client_id", _ABSENT)
        if client_id is _ABSENT:
            client_id = get("azp", _ABSENT)
            if client_id is _ABSENT:
                client_id = get("appid")
        tenant = get("tid", _ABSENT)
        if tenant is _ABSENT:
            tenant = get("tenant_id")
        jti = get("jti", _ABSENT)
        if jti is _ABSENT:
            jti = get("uti")
        roles_claim, permissions_claim, features = get("roles"), get("permissions"), get("features")
        roles = _EMPTY if roles_claim is None else _strings(roles_claim)
        permissions = _EMPTY if permissions_claim is None else _strings(permissions_claim)
        feature_names, feature_values = (_EMPTY, _NO_FEATURES) if features is None else _features(features)
    if type(scope_claim) is str:
        scopes = _scope_sets.get(scope_claim)
        if scopes is None:
            scopes = _scope_set(scope_claim)
    else:
        scopes = _EMPTY if scope_claim is None else _strings(scope_claim, split=True)
    aud = get("aud")
    # The frozen dataclass __init__ costs a setattr call per field: a fresh instance gets its
    # dict as one literal instead (same fields, same values, still frozen afterwards).
    principal = _new(cls)
    _set_attr(
        principal,
        "__dict__",
        {
            "subject": str(get("sub", "")),
            "issuer": str(get("iss", "")),
            "audience": (aud,) if type(aud) is str else tuple(a for a in aud or () if isinstance(a, str)),
            "expires_at": float(get("exp", 0)),
            "client_id": client_id if isinstance(client_id, str) else None,
            "scopes": scopes,
            "roles": roles,
            "permissions": permissions,
            "features": feature_names,
            "tenant_id": tenant if isinstance(tenant, str) else None,
            "token_id": jti if isinstance(jti, str) else None,
            "claims": MappingProxyType(claims),
            "feature_values": feature_values,
        },
    )
    return principal


def _scope_set(scope: str) -> frozenset[str]:
    scopes = frozenset(scope.split())
    if len(_scope_sets) >= _SCOPE_SETS_SIZE:
        _scope_sets.clear()
    _scope_sets[scope] = scopes
    return scopes


_new = object.__new__
_set_attr = object.__setattr__


_EMPTY: frozenset[str] = frozenset()
_NO_FEATURES: Mapping[str, Any] = MappingProxyType({})
# A caller's tokens carry the same scope string again and again: its (immutable) set is shared
# instead of split and built per token. Bounded; a full table is simply started over.
_SCOPE_SETS_SIZE = 1024
_scope_sets: dict[str, frozenset[str]] = {}
_ABSENT: Any = object()
# The claims read beyond sub, iss, aud, exp, scope, client_id and jti (optional or alternative names).
_OPTIONAL_CLAIMS = frozenset(
    {"scp", "azp", "appid", "tid", "tenant_id", "uti", "roles", "permissions", "features"}
)
