"""Access-token verification: configs, verifiers, the Principal and typed RFC 6750 errors.

This package is the core: it imports no web framework (the Litestar adapter is s2s.litestar).
The JOSE work (parsing, keys, signatures) is :mod:`s2s.jose`'s.
"""

from __future__ import annotations

from s2s.jose import AlgorithmPolicy, VerifyKey, load_jwk
from s2s.verify._bearer import extract_bearer
from s2s.verify._config import VerifierConfig
from s2s.verify._jwks import AsyncJWKSSource, SyncJWKSSource
from s2s.verify._principal import Principal
from s2s.verify._verifier import SyncTokenVerifier, TokenVerifier
from s2s.verify.errors import (
    BadSignature,
    DisallowedAlgorithm,
    ExpiredToken,
    InsufficientScope,
    InvalidAudience,
    InvalidClaim,
    InvalidRequest,
    InvalidToken,
    JWKSError,
    KeysUnavailable,
    MalformedToken,
    MissingClaim,
    MissingToken,
    TokenNotYetValid,
    TokenRevoked,
    TokenTooOld,
    UnknownKey,
    UnsupportedHeader,
    UntrustedIssuer,
    VerificationError,
    WrongTokenType,
)

__all__ = [
    "AlgorithmPolicy",
    "AsyncJWKSSource",
    "BadSignature",
    "DisallowedAlgorithm",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidRequest",
    "InvalidToken",
    "JWKSError",
    "KeysUnavailable",
    "MalformedToken",
    "MissingClaim",
    "MissingToken",
    "Principal",
    "SyncJWKSSource",
    "SyncTokenVerifier",
    "TokenNotYetValid",
    "TokenRevoked",
    "TokenTooOld",
    "TokenVerifier",
    "UnknownKey",
    "UnsupportedHeader",
    "UntrustedIssuer",
    "VerificationError",
    "VerifierConfig",
    "VerifyKey",
    "WrongTokenType",
    "extract_bearer",
    "load_jwk",
]
