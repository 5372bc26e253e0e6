"""Access-token verification: configs, verifiers, the Principal and typed RFC 6750 errors.

This package is the core: it imports no web framework (the Litestar adapter is s2s.litestar).
"""

from __future__ import annotations

from s2s.verify.algorithms import AlgorithmPolicy, VerifyKey, load_jwk
from s2s.verify.bearer import extract_bearer
from s2s.verify.config import VerifierConfig
from s2s.verify.errors import InsufficientScope, InvalidRequest, InvalidToken, MissingToken, VerificationError
from s2s.verify.jwks import AsyncJWKSSource, SyncJWKSSource
from s2s.verify.principal import Principal
from s2s.verify.verifier import SyncTokenVerifier, TokenVerifier

__all__ = [
    "AlgorithmPolicy",
    "AsyncJWKSSource",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "MissingToken",
    "Principal",
    "SyncJWKSSource",
    "SyncTokenVerifier",
    "TokenVerifier",
    "VerificationError",
    "VerifierConfig",
    "VerifyKey",
    "extract_bearer",
    "load_jwk",
]
