"""Access tokens: RFC 9068 JWT profile claims, signed with the keyset's current key.

The token endpoint builds the claims (:meth:`Minter.claims`) and signs them (:meth:`Minter.sign`)
as two steps so that nothing is built that the response does not need.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from s2s.clock import Clock, system_clock
from s2s.issuer._clients import Client
from s2s.keys._model import SigningKey
from s2s.keys._signing import Signer, b64url

__all__ = ["Minter"]

_HEADER = {"typ": "at+jwt"}


class Minter:
    def __init__(
        self, issuer: str, signer: Signer, *, clock: Clock = system_clock, claim_aliases: bool = False
    ) -> None:
        self.issuer = issuer
        self._signer = signer
        self._clock = clock
        # Okta/Entra-style aliases for verifiers written against those IdPs (a client may override).
        self.claim_aliases = claim_aliases

    def claims(self, client: Client, audience: str, scopes: Sequence[str], ttl: float) -> dict[str, Any]:
        iat = int(self._clock.now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client.client_id,
            "aud": audience,
            "client_id": client.client_id,
            "iat": iat,
            "exp": iat + max(1, int(ttl)),
            "jti": b64url(os.urandom(16)),  # what secrets.token_urlsafe(16) gives, one call less
        }
        if scopes:
            claims["scope"] = " ".join(scopes)
        aliases = self.claim_aliases if client.claim_aliases is None else client.claim_aliases
        if aliases:
            # Okta: cid and scp (a list); Entra ID v2: azp. RFC 9068's client_id and scope stay.
            claims["cid"] = claims["azp"] = client.client_id
            if scopes:
                claims["scp"] = list(scopes)
        for name in ("roles", "permissions"):
            values = getattr(client, name)
            if values:
                claims[name] = list(values)
        features = client.features
        if features:  # in the registration's shape: a list of names or an object
            claims["features"] = dict(features) if isinstance(features, Mapping) else list(features)
        return claims

    def sign(self, key: SigningKey, claims: dict[str, Any]) -> str:
        """The access token for ``claims`` (from :meth:`claims`): RFC 9068 header, signed by ``key``."""
        return self._signer.sign(key, _HEADER, claims)
