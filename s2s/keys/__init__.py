"""Signing keys, keysets, the rotation policy and key stores.

Stores: :class:`FileKeyStore` (``file://DIR``, the default) and :class:`SecretsManagerKeyStore`
(``aws-sm://NAME``, needs the ``aws`` extra only when used); :func:`open_keystore` picks one from a
URL. :class:`KeyFactories` decides where new keys are made (local or AWS KMS).
"""

from __future__ import annotations

from s2s.keys._aws_sm import SecretsManagerKeyStore
from s2s.keys._factories import KeyFactories
from s2s.keys._filestore import FileKeyStore
from s2s.keys._kms import KmsError, KmsKeyFactory, KmsSigner, RoutingSigner, SigningUnavailable
from s2s.keys._model import DEFAULT_ALG, SIGNING_ALGS, KeySet, KeyState, SigningKey, generate_key, thumbprint
from s2s.keys._rotation import (
    KeyFactory,
    RotationPolicy,
    ensure_keys,
    local_key_factory,
    prune,
    revoke,
    rotate,
    scheduled_step,
)
from s2s.keys._signing import LocalSigner, Signer
from s2s.keys._store import KeyStore, open_keystore, update_keyset
from s2s.keys.errors import KeyNotFound, KeyStoreError, RotationRefused

__all__ = [
    "DEFAULT_ALG",
    "SIGNING_ALGS",
    "FileKeyStore",
    "KeyFactories",
    "KeyFactory",
    "KeyNotFound",
    "KeySet",
    "KeyState",
    "KeyStore",
    "KeyStoreError",
    "KmsError",
    "KmsKeyFactory",
    "KmsSigner",
    "LocalSigner",
    "RotationPolicy",
    "RotationRefused",
    "RoutingSigner",
    "SecretsManagerKeyStore",
    "Signer",
    "SigningKey",
    "SigningUnavailable",
    "ensure_keys",
    "generate_key",
    "local_key_factory",
    "open_keystore",
    "prune",
    "revoke",
    "rotate",
    "scheduled_step",
    "thumbprint",
    "update_keyset",
]
