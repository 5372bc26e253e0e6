"""The verified caller."""

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


@dataclass(frozen=True, slots=True)
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

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """Build from already-verified claims. ``scp`` (Entra) wins over ``scope`` (RFC 9068)."""
        aud = claims.get("aud")
        audience = (aud,) if isinstance(aud, str) else tuple(a for a in aud or () if isinstance(a, str))
        scope_claim = claims["scp"] if "scp" in claims else claims.get("scope")
        client_id = claims.get("client_id", claims.get("azp", claims.get("appid")))
        tenant = claims.get("tid", claims.get("tenant_id"))
        jti = claims.get("jti", claims.get("uti"))
        return cls(
            subject=str(claims.get("sub", "")),
            issuer=str(claims.get("iss", "")),
            audience=audience,
            expires_at=float(claims.get("exp", 0)),
            client_id=client_id if isinstance(client_id, str) else None,
            scopes=_strings(scope_claim, split=True),
            roles=_strings(claims.get("roles")),
            permissions=_strings(claims.get("permissions")),
            features=_strings(claims.get("features")),
            tenant_id=tenant if isinstance(tenant, str) else None,
            token_id=jti if isinstance(jti, str) else None,
            claims=MappingProxyType(dict(claims)),
        )
