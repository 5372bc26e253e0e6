"""The client model: who may obtain tokens, for which audiences and scopes, and how it authenticates.

A client authenticates either with a secret (stored only as a SHA-256 hash, see
:mod:`s2s.issuer._secret_hash`) or with ``private_key_jwt`` (its public keys are registered; it
never shares a secret with us), and/or with a token its platform gives it, matched to one of its
federated credentials (:mod:`s2s.issuer._federation`: no secret anywhere). Where clients are
kept: :mod:`s2s.issuer._registry`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from s2s.errors import ConfigError
from s2s.issuer._assertion import client_public_key as _client_public_key
from s2s.issuer._certs import leaf_certificate
from s2s.issuer._federation import FederatedCredential
from s2s.issuer._secret_hash import generate_secret, hash_secret, parse_secret_hash
from s2s.jose import CLIENT_ASSERTION_ALGS, algs_for_jwk
from s2s.oauth import CLIENT_ID, SCOPE_TOKEN

__all__ = ["CLIENT_ASSERTION_ALGS", "Client", "FederatedCredential", "algs_for_jwk", "new_client"]


def _strings(value: Any, what: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{what} must be a list of strings")
    out = []
    for item in value:
        if not isinstance(item, str) or not item or (pattern is not None and not pattern.match(item)):
            raise ConfigError(f"invalid {what} entry {item!r}")
        if item not in out:
            out.append(item)
    return tuple(out)


MAX_FEATURES_JSON = 4096


def _features(value: Any) -> tuple[str, ...] | Mapping[str, Any]:
    """Features as a list of names or as an object (name -> JSON value), kept in the shape given."""
    if not isinstance(value, Mapping):
        return _strings(value, "feature")
    if not all(isinstance(k, str) and k for k in value):
        raise ConfigError("feature names must be non-empty strings")
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise ConfigError("feature values must be JSON values") from None
    if size > MAX_FEATURES_JSON:
        raise ConfigError(f"features must stay under {MAX_FEATURES_JSON} bytes of JSON")
    # Read-only: a Client is frozen, and the same mapping goes into every token.
    return MappingProxyType(json.loads(json.dumps(value)))


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    audiences: tuple[str, ...]
    scopes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    # A list of names, or an object of name -> JSON value (ioserver-oidc's shape: enabled = truthy).
    features: tuple[str, ...] | Mapping[str, Any] = ()
    max_ttl: float | None = None
    # Also emit Okta/Entra-style aliases (scp, cid, azp); None: the issuer's S2S_CLAIM_ALIASES.
    claim_aliases: bool | None = None
    # Exactly one credential. The hash is not secret-equivalent, but it stays out of repr and logs.
    secret_hash: str | None = field(default=None, repr=False)
    jwks: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    created_at: float | None = None
    # External identities that may act as this client (federated client credentials).
    federated: tuple[FederatedCredential, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not CLIENT_ID.match(self.client_id):
            raise ConfigError("client_id must be 1-128 characters of A-Z a-z 0-9 . _ ~ -")
        object.__setattr__(self, "audiences", _strings(self.audiences, "audience"))
        if not self.audiences:
            raise ConfigError(f"client {self.client_id}: at least one audience is required")
        object.__setattr__(self, "scopes", _strings(self.scopes, "scope", SCOPE_TOKEN))
        for name in ("roles", "permissions"):
            object.__setattr__(self, name, _strings(getattr(self, name), name[:-1]))
        object.__setattr__(self, "features", _features(self.features))
        ttl = self.max_ttl
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf
        ):
            raise ConfigError(f"client {self.client_id}: max_ttl must be a positive number of seconds")
        if self.claim_aliases is not None and not isinstance(self.claim_aliases, bool):
            raise ConfigError(f"client {self.client_id}: claim_aliases must be true, false or absent")
        federated = self.federated
        if not isinstance(federated, tuple | list) or not all(
            isinstance(f, FederatedCredential) for f in federated
        ):
            raise ConfigError(f"client {self.client_id}: federated must be a list of federated credentials")
        object.__setattr__(self, "federated", tuple(dict.fromkeys(federated)))
        if self.secret_hash is not None and self.jwks:
            raise ConfigError(f"client {self.client_id}: needs exactly one of a secret or a public JWKS")
        if self.secret_hash is None and not self.jwks and not self.federated:
            raise ConfigError(
                f"client {self.client_id}: needs a secret, a public JWKS or a federated credential"
            )
        if self.secret_hash is not None:
            parse_secret_hash(self.secret_hash)
        keys = tuple(_client_public_key(k) for k in self.jwks)
        kids = [k["kid"] for k in keys]
        if len(set(kids)) != len(kids):
            raise ConfigError(f"client {self.client_id}: duplicate kid in its JWKS")
        object.__setattr__(self, "jwks", keys)

    @property
    def auth_method(self) -> str:
        if self.secret_hash is not None:
            return "client_secret"
        return "private_key_jwt" if self.jwks else "federated"

    def to_public_dict(self) -> dict[str, Any]:
        """Safe for tables and JSON output: no hash."""
        out: dict[str, Any] = {
            "client_id": self.client_id,
            "auth_method": self.auth_method,
            "audiences": list(self.audiences),
            "scopes": list(self.scopes),
            "roles": list(self.roles),
            "permissions": list(self.permissions),
            "features": dict(self.features) if isinstance(self.features, Mapping) else list(self.features),
            "max_ttl": self.max_ttl,
            "created_at": self.created_at,
        }
        if self.claim_aliases is not None:
            out["claim_aliases"] = self.claim_aliases
        if self.jwks:
            out["kids"] = [k["kid"] for k in self.jwks]
            certs = [(k["kid"], leaf_certificate(k["x5c"])) for k in self.jwks if "x5c" in k]
            if certs:
                out["certificates"] = [
                    {"kid": kid, "x5t#S256": c.x5t_s256, "not_before": c.not_before, "not_after": c.not_after}
                    for kid, c in certs
                ]
        if self.federated:
            out["federated"] = [f.to_document() for f in self.federated]
        return out

    def to_document(self) -> dict[str, Any]:
        doc = self.to_public_dict()
        doc.pop("auth_method")
        doc.pop("kids", None)
        doc.pop("certificates", None)
        if self.secret_hash is not None:
            doc["secret_hash"] = self.secret_hash
        elif self.jwks:
            doc["jwks"] = {"keys": [dict(k) for k in self.jwks]}
        return doc

    @classmethod
    def from_document(cls, doc: Any) -> Client:
        if not isinstance(doc, Mapping):
            raise ConfigError("a client record must be a JSON object")
        jwks = doc.get("jwks")
        keys: Any = ()
        if jwks is not None:
            if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
                raise ConfigError("client jwks must be an object with a 'keys' list")
            keys = tuple(jwks["keys"])
        federated = doc.get("federated", ())
        if not isinstance(federated, list | tuple):
            raise ConfigError("client federated must be a list of federated credentials")
        credentials = tuple(FederatedCredential.from_document(f) for f in federated)
        try:
            return cls(
                client_id=doc.get("client_id"),  # type: ignore[arg-type]
                audiences=doc.get("audiences", ()),
                scopes=doc.get("scopes", ()),
                roles=doc.get("roles", ()),
                permissions=doc.get("permissions", ()),
                features=doc.get("features", ()),
                max_ttl=doc.get("max_ttl"),
                claim_aliases=doc.get("claim_aliases"),
                secret_hash=doc.get("secret_hash"),
                jwks=keys,
                created_at=doc.get("created_at"),
                federated=credentials,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"malformed client record ({type(exc).__name__})") from None


def new_client(
    client_id: str,
    *,
    audiences: Sequence[str],
    scopes: Sequence[str] = (),
    roles: Sequence[str] = (),
    permissions: Sequence[str] = (),
    features: Sequence[str] | Mapping[str, Any] = (),
    max_ttl: float | None = None,
    claim_aliases: bool | None = None,
    jwks: Mapping[str, Any] | None = None,
    now: float | None = None,
    federated: Sequence[FederatedCredential] = (),
) -> tuple[Client, str | None]:
    """A client and, unless it uses ``private_key_jwt`` (``jwks`` given) or federated credentials
    only (``federated`` given), its new secret in clear.

    The clear secret exists only in the return value: show it once, store only the client.
    """
    secret: str | None = None
    keys: tuple[Mapping[str, Any], ...] = ()
    if jwks is not None:
        if "keys" in jwks:
            raw = jwks["keys"]
            if not isinstance(raw, list):
                raise ConfigError("a JWKS must have a 'keys' list")
            keys = tuple(raw)
        else:
            keys = (jwks,)  # a single JWK
        if not keys:
            raise ConfigError("the JWKS holds no key")
    elif not federated:
        secret = generate_secret()
    client = Client(
        client_id=client_id,
        audiences=tuple(audiences),
        scopes=tuple(scopes),
        roles=tuple(roles),
        permissions=tuple(permissions),
        features=features if isinstance(features, Mapping) else tuple(features),
        max_ttl=max_ttl,
        claim_aliases=claim_aliases,
        secret_hash=hash_secret(secret) if secret is not None else None,
        jwks=keys,
        created_at=now,
        federated=tuple(federated),
    )
    return client, secret
