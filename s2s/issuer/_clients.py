"""The client model: who may obtain tokens, for which audiences and scopes, and how it authenticates.

A client authenticates either with a secret (stored only as a SHA-256 hash, see
:mod:`s2s.issuer._secret_hash`) or with ``private_key_jwt`` (its public keys are registered; it
never shares a secret with us), and/or with a token its platform gives it, matched to one of its
federated credentials (:mod:`s2s.issuer._federation`: no secret anywhere). Where clients are
kept: :mod:`s2s.issuer._registry`.

A secret is replaced without a gap (:meth:`Client.with_new_secret`, ``s2s clients rotate-secret``):
the new one becomes current and the old one stays accepted until the grace ends
(``previous_secrets``, each with its ``not_after``); the next write of the registry prunes the
expired ones (:func:`prune_expired_secrets`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from s2s.errors import ConfigError
from s2s.issuer._assertion import client_public_key as _client_public_key
from s2s.issuer._certs import leaf_certificate
from s2s.issuer._federation import FederatedCredential
from s2s.issuer._secret_hash import StoredSecret, generate_secret, hash_secret
from s2s.jose import CLIENT_ASSERTION_ALGS, algs_for_jwk
from s2s.oauth import CLIENT_ID, SCOPE_TOKEN

__all__ = [
    "CLIENT_ASSERTION_ALGS",
    "DEFAULT_SECRET_GRACE",
    "MAX_PREVIOUS_SECRETS",
    "MAX_SECRET_GRACE",
    "Client",
    "FederatedCredential",
    "StoredSecret",
    "algs_for_jwk",
    "new_client",
    "prune_expired_secrets",
]

# `s2s clients rotate-secret --grace`: long enough to roll a secret out to every replica of the
# caller, short enough that a replaced secret does not live on. At most a week.
DEFAULT_SECRET_GRACE = 3600.0
MAX_SECRET_GRACE = 7 * 86400.0
# Old secrets a client may hold in their grace at once (besides its current one).
MAX_PREVIOUS_SECRETS = 4


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


def _previous_secrets(value: Any, client_id: str) -> tuple[StoredSecret, ...]:
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        raise ConfigError(f"client {client_id}: previous_secrets must be a list")
    out = tuple(value)
    if not all(isinstance(s, StoredSecret) and s.not_after is not None for s in out):
        raise ConfigError(f"client {client_id}: each previous secret needs a not_after")
    if len(out) > MAX_PREVIOUS_SECRETS:
        raise ConfigError(f"client {client_id}: more than {MAX_PREVIOUS_SECRETS} previous secrets")
    return out


def _previous_secret_record(record: Any) -> StoredSecret:
    if not isinstance(record, Mapping):
        raise ConfigError("a previous secret must be an object with secret_hash and not_after")
    return StoredSecret(record.get("secret_hash"), record.get("not_after"))  # type: ignore[arg-type]


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
    # Secrets being replaced (rotate-secret), each accepted until its not_after; keyword only.
    previous_secrets: tuple[StoredSecret, ...] = field(default=(), repr=False, kw_only=True)
    # Every secret it may present, the current one first: what the token endpoint compares.
    secrets: tuple[StoredSecret, ...] = field(init=False, repr=False, compare=False)
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
        previous = _previous_secrets(self.previous_secrets, self.client_id)
        if previous and self.secret_hash is None:
            raise ConfigError(f"client {self.client_id}: previous secrets without a current secret")
        object.__setattr__(self, "previous_secrets", previous)
        current = () if self.secret_hash is None else (StoredSecret(self.secret_hash),)
        object.__setattr__(self, "secrets", current + previous)
        keys = tuple(_client_public_key(k) for k in self.jwks)
        kids = [k["kid"] for k in keys]
        if len(set(kids)) != len(kids):
            raise ConfigError(f"client {self.client_id}: duplicate kid in its JWKS")
        object.__setattr__(self, "jwks", keys)

    def with_new_secret(self, secret_hash: str, *, now: float, grace: float = DEFAULT_SECRET_GRACE) -> Client:
        """This client with ``secret_hash`` as its current secret, the current one accepted for
        ``grace`` more seconds (at most :data:`MAX_SECRET_GRACE`). ``grace=0`` replaces at once:
        the current secret and every earlier one still in its grace stop working now."""
        if self.secret_hash is None:
            method = self.auth_method
            raise ConfigError(f"client {self.client_id} authenticates with {method}: it has no secret")
        if isinstance(grace, bool) or not 0 <= grace <= MAX_SECRET_GRACE:
            raise ConfigError(f"the grace must be between 0 and {MAX_SECRET_GRACE / 86400:g} days")
        previous: tuple[StoredSecret, ...] = ()
        if grace > 0:
            kept = self.without_expired_secrets(now).previous_secrets
            previous = (StoredSecret(self.secret_hash, now + grace), *kept)
            if len(previous) > MAX_PREVIOUS_SECRETS:
                raise ConfigError(
                    f"client {self.client_id} already has {len(kept)} old secrets in their grace: "
                    "wait until one expires, or rotate with --grace 0 to end them all now"
                )
        return replace(self, secret_hash=secret_hash, previous_secrets=previous)

    def without_expired_secrets(self, now: float) -> Client:
        """This client without the replaced secrets whose grace has ended (itself if none has)."""
        kept = tuple(s for s in self.previous_secrets if not s.expired(now))
        return self if len(kept) == len(self.previous_secrets) else replace(self, previous_secrets=kept)

    def with_secret_hash_replaced(self, old: str, new: str) -> Client:
        """This client with the stored hash ``old`` (current or previous) replaced by ``new`` (the
        same secret under the fast hash, after a legacy scrypt check), its not_after kept."""
        return replace(
            self,
            secret_hash=new if self.secret_hash == old else self.secret_hash,
            previous_secrets=tuple(
                StoredSecret(new, s.not_after) if s.secret_hash == old else s for s in self.previous_secrets
            ),
        )

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
        if self.secrets:
            # How many secrets it may present, and until when each replaced one is accepted.
            out["secret_count"] = len(self.secrets)
            out["previous_secrets_not_after"] = [s.not_after for s in self.previous_secrets]
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
        doc.pop("secret_count", None)
        doc.pop("previous_secrets_not_after", None)
        if self.secret_hash is not None:
            doc["secret_hash"] = self.secret_hash
            if self.previous_secrets:
                doc["previous_secrets"] = [
                    {"secret_hash": s.secret_hash, "not_after": s.not_after} for s in self.previous_secrets
                ]
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
        previous = doc.get("previous_secrets", ())
        if not isinstance(previous, list | tuple):
            raise ConfigError("client previous_secrets must be a list")
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
                previous_secrets=tuple(_previous_secret_record(r) for r in previous),
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


def prune_expired_secrets(clients: dict[str, Client], now: float) -> None:
    """Drop, in place, every replaced secret whose grace has ended: run on each registry write."""
    for client_id, client in list(clients.items()):
        clients[client_id] = client.without_expired_secrets(now)
