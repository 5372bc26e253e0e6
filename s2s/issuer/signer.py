"""The issuer's signer: local or KMS per key, with signing failures answered as 503, not 500."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from s2s.issuer.token import TemporarilyUnavailable
from s2s.keys.kms import RoutingSigner, SigningUnavailable
from s2s.keys.model import SigningKey
from s2s.keys.signing import Signer

__all__ = ["UnavailableOnFailure", "issuer_signer"]

log = logging.getLogger("s2s.issuer.signer")


class UnavailableOnFailure:
    """Turns a :class:`SigningUnavailable` (KMS down, throttled, key disabled) into
    ``503 temporarily_unavailable`` with ``Retry-After``: the request may succeed later, and the
    caller learns nothing about the signing backend (the detail goes to the log only)."""

    def __init__(self, inner: Signer) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return f"UnavailableOnFailure({self._inner!r})"

    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        try:
            return self._inner.sign(key, header, claims)
        except SigningUnavailable as exc:
            log.error("signing with key %s failed: %s", key.kid, exc.description)
            raise TemporarilyUnavailable("signing is temporarily unavailable") from None


def issuer_signer(inner: Signer | None = None) -> Signer:
    """``inner`` (default: a :class:`RoutingSigner`) wrapped so failures become 503."""
    return UnavailableOnFailure(inner or RoutingSigner())
