"""The JOSE core: the one home of base64url, the algorithm table, JWK members and key loading,
RFC 7638 thumbprints, the header policy, compact JWS parse/serialize, sign and verify.

The verifier (:mod:`s2s.verify`), the issuer's local and KMS signers (:mod:`s2s.keys`), the
client-assertion check (:mod:`s2s.issuer._assertion`) and client-assertion creation
(:mod:`s2s.client._credentials`) all go through it, so a JOSE fix lands once.

Modules (one concept each): ``_b64`` (base64url), ``_algorithms`` (the table and its roles,
:class:`AlgorithmPolicy`), ``_keys`` (JWK members, public/private key loading, thumbprints,
sign/verify functions, :class:`VerifyKey`), ``_header`` (:class:`HeaderPolicy`, the one deny-list
:data:`NEVER_ALLOWED`), ``_compact`` (parse, serialize, :func:`check_signature`), ``errors``.

joserfc or ``cryptography``? Measured per primitive, in one process on this shared 2-core VM
(CPU µs per call, best of 15 short runs, load average 2;
``.venv/bin/python bench/verify_bench.py --primitives``):

=====================================  ========  =========  =====  =============================
primitive                              joserfc   s2s.jose   ratio  decision
=====================================  ========  =========  =====  =============================
verify ES256 compact JWS (key loaded)      82.1       67.9   0.83  cryptography, own parser
verify RS256 compact JWS (key loaded)      34.6       24.2   0.70  cryptography, own parser
sign ES256 compact JWS (key loaded)        37.0       28.6   0.77  cryptography
import a public EC JWK                     25.8       13.2   0.51  cryptography
import a private EC JWK                    44.6       29.1   0.65  cryptography
RFC 7638 thumbprint (EC)                   34.4        4.7   0.14  hashlib over the members
=====================================  ========  =========  =====  =============================

Every primitive is a thin call into ``cryptography`` (which joserfc also calls underneath), so
s2s.jose calls it directly: joserfc's per-call registry and header checks, key wrappers and JSON
round trips add 10 µs to an RS256 verification that costs 24 µs in all here, and its traps
(``registry=`` silently ignoring ``algorithms=``, HS256 accepted without an allowlist,
``TypeError`` on a malformed ``crit``, ``typ: JWT`` written by default; see DESIGN.md) do not
apply. Keys exported by s2s.jose are byte for byte what joserfc wrote (tests/jose), so key
files and kids are unchanged. The policy is one object either way: :class:`HeaderPolicy` plus
:class:`AlgorithmPolicy` over the one table. joserfc remains a test peer (interop, benchmarks).
"""

from __future__ import annotations

from s2s.jose._algorithms import (
    ALGORITHMS,
    CLIENT_ASSERTION_ALGS,
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    SIGNING_ALGS,
    VERIFIER_ALGORITHMS,
    Algorithm,
    AlgorithmPolicy,
    algs_for_jwk,
    key_kind,
    normalize_alg,
)
from s2s.jose._b64 import b64url_decode, b64url_encode
from s2s.jose._compact import (
    DEFAULT_LIMITS,
    ParsedJWS,
    TokenLimits,
    check_signature,
    encode_claims,
    encode_header,
    parse_compact,
    serialize_compact,
)
from s2s.jose._header import BASE_HEADER_PARAMS, NEVER_ALLOWED, HeaderPolicy, loads_object, normalize_typ
from s2s.jose._keys import (
    PRIVATE_MEMBERS,
    PrivateKey,
    PublicKey,
    SignFunction,
    VerifyFunction,
    VerifyKey,
    check_signing_use,
    ecdsa_der_to_raw,
    generate_private_key,
    load_jwk,
    load_pem_private_key,
    load_verify_key,
    private_jwk_of,
    private_key_from_jwk,
    public_jwk_of,
    public_key_from_jwk,
    public_key_to_jwk,
    sign_function,
    thumbprint,
    verify_function,
)
from s2s.jose.errors import (
    AlgorithmRejected,
    HeaderRejected,
    JoseError,
    KeyRejected,
    MalformedJWS,
    MissingKeyId,
    SignatureInvalid,
    TypeRejected,
)

__all__ = [
    "ALGORITHMS",
    "BASE_HEADER_PARAMS",
    "CLIENT_ASSERTION_ALGS",
    "DEFAULT_LIMITS",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "NEVER_ALLOWED",
    "PRIVATE_MEMBERS",
    "SIGNING_ALGS",
    "VERIFIER_ALGORITHMS",
    "Algorithm",
    "AlgorithmPolicy",
    "AlgorithmRejected",
    "HeaderPolicy",
    "HeaderRejected",
    "JoseError",
    "KeyRejected",
    "MalformedJWS",
    "MissingKeyId",
    "ParsedJWS",
    "PrivateKey",
    "PublicKey",
    "SignFunction",
    "SignatureInvalid",
    "TokenLimits",
    "TypeRejected",
    "VerifyFunction",
    "VerifyKey",
    "algs_for_jwk",
    "b64url_decode",
    "b64url_encode",
    "check_signature",
    "check_signing_use",
    "ecdsa_der_to_raw",
    "encode_claims",
    "encode_header",
    "generate_private_key",
    "key_kind",
    "load_jwk",
    "load_pem_private_key",
    "load_verify_key",
    "loads_object",
    "normalize_alg",
    "normalize_typ",
    "parse_compact",
    "private_jwk_of",
    "private_key_from_jwk",
    "public_jwk_of",
    "public_key_from_jwk",
    "public_key_to_jwk",
    "serialize_compact",
    "sign_function",
    "thumbprint",
    "verify_function",
]
