"""Signing keys, keysets, the rotation policy and key stores."""

from __future__ import annotations

from s2s.keys._factories import KeyFactories
from s2s.keys.model import DEFAULT_ALG, SIGNING_ALGS, KeySet, KeyState, SigningKey, generate_key, thumbprint
from s2s.keys.rotation import RotationPolicy, ensure_keys, prune, revoke, rotate, scheduled_step
from s2s.keys.store import KeyStore, open_keystore, update_keyset

__all__ = [
    "DEFAULT_ALG",
    "SIGNING_ALGS",
    "KeyFactories",
    "KeySet",
    "KeyState",
    "KeyStore",
    "RotationPolicy",
    "SigningKey",
    "ensure_keys",
    "generate_key",
    "open_keystore",
    "prune",
    "revoke",
    "rotate",
    "scheduled_step",
    "thumbprint",
    "update_keyset",
]
