"""Verifier cost per token against the crypto floor, PyJWT and plain joserfc, in one process.

    .venv/bin/python bench/verify_bench.py [--tokens 2000] [--rounds 5] [--chunk 50] [--cache-size 4096]
    .venv/bin/python bench/verify_bench.py --primitives    # joserfc vs s2s.jose, per primitive

Measured as a service runs, not in a lab: the garbage collector stays ON, and each s2s verifier
first sees ``cache-size`` tokens twice (a service's clients reuse their tokens), so its
verified-token cache is full when the measurement starts and keeps working (inserting, evicting)
during it, with everything that costs the collector.

Times are CPU time of the measuring thread (``time.thread_time_ns``), not wall-clock time: on a
shared machine other jobs preempt this process, which wall-clock time counts and CPU time does
not (the collector's work, done in this thread, is counted).

Cold verification: for ES256 and RS256, every contender verifies tokens it has never seen, with
the keys already loaded. The tokens are cut in small chunks and the contenders take turns on each
chunk (order rotated), so that the noise of a shared machine hits all of them alike; a chunk is
never shown twice to one verifier (``rounds`` x ``tokens`` distinct tokens). Printed: the median
and the best chunk in microseconds per token, the ratio of medians to the floor and the median of
the per-chunk ratios (each s2s chunk against the floor's chunk of the same turn).

The floor is the least any correct verifier does: base64url-decode the three segments, json.loads
header and payload, one ``cryptography`` verify with a preloaded key object, and the claim checks
(iss, aud, exp, nbf, iat). "Repeated" is the same token again and again (the verified-token cache).

Only public API is used, so the same script measures an older tree:
``PYTHONPATH=/path/to/old/tree .venv/bin/python bench/verify_bench.py``. Better, on a shared
machine: ``--against /path/to/old/tree`` imports that tree's ``s2s`` beside this one and adds its
two verifiers as contenders of the same run (same tokens, same chunks, same noise), so that a
change is measured as a difference within one process rather than between two noisy runs.

``--primitives`` times each JOSE primitive through joserfc and through :mod:`s2s.jose` (best of
many short runs): the figures behind the choices written in ``s2s/jose/__init__.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

import httpx
import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, RSAKey, import_key
from joserfc.jws import JWSRegistry

from s2s.keys import KeyState, LocalSigner, SigningKey, generate_key
from s2s.verify import SyncTokenVerifier, TokenVerifier, VerifierConfig

ISSUER = "https://issuer.bench"
AUDIENCE = "orders-api"


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def mint_tokens(key: SigningKey, n: int, prefix: str) -> list[str]:
    signer = LocalSigner()
    now = int(time.time())
    return [
        signer.sign(
            key,
            {"typ": "at+jwt"},
            {
                "iss": ISSUER,
                "sub": "billing-service",
                "aud": AUDIENCE,
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "jti": f"{prefix}-{i}",
                "client_id": "billing-service",
                "scope": "orders:read orders:write",
            },
        )
        for i in range(n)
    ]


def public_key(key: SigningKey) -> Any:
    cls = ECKey if key.alg == "ES256" else RSAKey
    return cls.import_key(dict(key.public_jwk)).public_key


def floor_verifier(key: SigningKey) -> Callable[[str], dict[str, Any]]:
    pub = public_key(key)
    es = key.alg == "ES256"
    ecdsa = ec.ECDSA(hashes.SHA256())
    pkcs1 = padding.PKCS1v15()
    sha = hashes.SHA256()

    def verify(token: str) -> dict[str, Any]:
        h, p, s = token.split(".")
        header = json.loads(b64d(h))
        assert header["alg"] == key.alg
        sig = b64d(s)
        data = f"{h}.{p}".encode()
        if es:
            pub.verify(
                encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
                data,
                ecdsa,
            )
        else:
            pub.verify(sig, data, pkcs1, sha)
        claims: dict[str, Any] = json.loads(b64d(p))
        now = time.time()
        if claims["iss"] != ISSUER or claims["aud"] != AUDIENCE:
            raise ValueError("claims")
        if not (claims["exp"] + 30 > now and claims["nbf"] - 30 <= now and claims["iat"] - 30 <= now):
            raise ValueError("time")
        return claims

    return verify


def pyjwt_verifier(key: SigningKey) -> Callable[[str], Any]:
    pub = public_key(key)
    options = {"require": ["iss", "sub", "aud", "exp", "iat"]}

    def verify(token: str) -> Any:
        return pyjwt.decode(
            token, pub, algorithms=[key.alg], audience=AUDIENCE, issuer=ISSUER, leeway=30, options=options
        )

    return verify


def joserfc_verifier(key: SigningKey) -> Callable[[str], Any]:
    jkey = (ECKey if key.alg == "ES256" else RSAKey).import_key(dict(key.public_jwk))
    registry = JWSRegistry(algorithms=[key.alg])
    claims_registry = jose_jwt.JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )

    def verify(token: str) -> Any:
        decoded = jose_jwt.decode(token, jkey, registry=registry)
        claims_registry.validate(decoded.claims)
        return decoded.claims

    return verify


def timed(fn: Callable[[str], Any], tokens: list[str]) -> float:
    """CPU microseconds per token for one pass over ``tokens`` (garbage collector on)."""
    start = time.thread_time_ns()
    for t in tokens:
        fn(t)
    return (time.thread_time_ns() - start) / len(tokens) / 1000


def async_timer(verifier: TokenVerifier, loop: asyncio.AbstractEventLoop) -> Callable[[list[str]], float]:
    async def go(tokens: list[str]) -> float:
        verify = verifier.verify
        start = time.thread_time_ns()
        for t in tokens:
            await verify(t)
        return (time.thread_time_ns() - start) / len(tokens) / 1000

    return lambda tokens: loop.run_until_complete(go(tokens))


def compare(
    contenders: dict[str, Callable[[list[str]], float]], tokens: list[str], chunk: int
) -> dict[str, list[float]]:
    """Small chunks, contenders interleaved (order rotated) so that noise hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    chunks = [tokens[i : i + chunk] for i in range(0, len(tokens), chunk)]
    for c, part in enumerate(chunks):
        shift = c % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(contenders[name](part))
    return samples


def other_tree(path: str) -> ModuleType:
    """``s2s.verify`` of the tree at ``path``, imported beside this one: its modules are taken out
    of ``sys.modules`` again (each function keeps its own module's globals), ours put back."""
    ours = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] == "s2s"}
    sys.path.insert(0, path)
    try:
        verify = importlib.import_module("s2s.verify")
    finally:
        sys.path.remove(path)
        for name in [n for n in sys.modules if n.split(".")[0] == "s2s"]:
            del sys.modules[name]
        sys.modules.update(ours)
    return verify


def primitives() -> None:
    """joserfc vs s2s.jose, per primitive, µs per call (best of 15 runs)."""
    # Only here: the rest of this script also measures older trees, which have no s2s.jose.
    from s2s import jose  # noqa: PLC0415

    def best(fn: Callable[[], Any], number: int) -> float:
        return min(timeit.repeat(fn, number=number, repeat=15, timer=time.thread_time)) / number * 1e6

    print("primitive                              joserfc µs   s2s.jose µs   ratio  (CPU time, best of 15)")
    for alg in ("ES256", "RS256"):
        private = jose.generate_private_key(alg)
        jwk = jose.private_jwk_of(private)
        public = jose.public_jwk_of(jwk)
        theirs = import_key(public)
        registry = JWSRegistry(algorithms=[alg])
        token = jose.serialize_compact(
            {"alg": alg, "kid": "k"}, {"sub": "svc"}, jose.sign_function(private, alg)
        )
        ours = jose.load_verify_key(public, alg, "k")

        def s2s_verify(token: str = token, ours: jose.VerifyKey = ours) -> None:
            jose.check_signature(jose.parse_compact(token), ours)

        rows = [
            (
                f"verify {alg} compact JWS (key loaded)",
                lambda t=token, k=theirs, r=registry: jws.deserialize_compact(t, k, registry=r),  # type: ignore[misc]
                s2s_verify,
            )
        ]
        if alg == "ES256":
            their_private = import_key(jwk)
            sign = jose.sign_function(private, alg)
            rows += [
                (
                    "sign ES256 compact JWS (key loaded)",
                    lambda k=their_private, r=registry: jws.serialize_compact(  # type: ignore[misc]
                        {"alg": "ES256", "kid": "k"}, b'{"sub":"svc"}', k, registry=r
                    ),
                    lambda s=sign: jose.serialize_compact({"alg": "ES256", "kid": "k"}, {"sub": "svc"}, s),  # type: ignore[misc]
                ),
                (
                    "import a public EC JWK",
                    lambda p=public: import_key(p),
                    lambda p=public: jose.load_verify_key(p, "ES256"),
                ),  # type: ignore[misc]
                (
                    "import a private EC JWK",
                    lambda j=jwk: import_key(j),
                    lambda j=jwk: jose.private_key_from_jwk(j),
                ),  # type: ignore[misc]
                (
                    "RFC 7638 thumbprint (EC)",
                    lambda p=public: import_key(p).thumbprint(),
                    lambda p=public: jose.thumbprint(p),
                ),  # type: ignore[misc]
            ]
        for name, theirs_fn, ours_fn in rows:
            a, b = best(theirs_fn, 300), best(ours_fn, 300)
            print(f"{name:38s} {a:10.1f}   {b:11.1f}   {b / a:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--cache-size", type=int, default=4096)
    parser.add_argument("--primitives", action="store_true")
    parser.add_argument("--against", metavar="TREE", help="also measure the verifiers of this s2s tree")
    args = parser.parse_args()
    if args.primitives:
        primitives()
        return
    theirs = other_tree(args.against) if args.against else None
    now = time.time()
    keys = {alg: generate_key(alg, now=now, state=KeyState.CURRENT) for alg in ("ES256", "RS256")}
    jwks = {"keys": [k.public_jwk_entry() for k in keys.values()]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=jwks, headers={"Cache-Control": "max-age=3600"})

    loop = asyncio.new_event_loop()
    config = VerifierConfig.for_s2s(ISSUER, AUDIENCE)
    print(
        f"{args.tokens * args.rounds} fresh tokens per contender, chunks of {args.chunk}, contenders"
        f" interleaved, gc on, verified-token caches of {args.cache_size} full;"
        " CPU µs per token (median and best chunk), ratio of medians to the floor,"
        " median of per-chunk ratios\n"
    )
    floor_name = "floor (cryptography + json + claims)"
    averifier = sverifier = None
    for alg, key in keys.items():
        averifier = TokenVerifier(
            config,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
            cache_size=args.cache_size,
        )
        sverifier = SyncTokenVerifier(
            config,
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
            cache_size=args.cache_size,
        )
        loop.run_until_complete(averifier.start())
        sverifier.start()
        # A service's steady state: its clients' tokens come back, so the cache is full.
        warm = mint_tokens(key, args.cache_size, "warm")
        arun, srun = async_timer(averifier, loop), partial(timed, sverifier.verify)
        for _ in range(2):
            arun(warm)
            srun(warm)
        tokens = mint_tokens(key, args.tokens * args.rounds, "cold")
        contenders: dict[str, Callable[[list[str]], float]] = {
            floor_name: partial(timed, floor_verifier(key)),
            "s2s TokenVerifier (async, cold)": arun,
            "s2s SyncTokenVerifier (cold)": srun,
            "PyJWT jwt.decode": partial(timed, pyjwt_verifier(key)),
            "joserfc jwt.decode + JWTClaimsRegistry": partial(timed, joserfc_verifier(key)),
        }
        if theirs is not None:
            their_async = theirs.TokenVerifier(
                theirs.VerifierConfig.for_s2s(ISSUER, AUDIENCE),
                http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
                cache_size=args.cache_size,
            )
            their_sync = theirs.SyncTokenVerifier(
                theirs.VerifierConfig.for_s2s(ISSUER, AUDIENCE),
                http_client=httpx.Client(transport=httpx.MockTransport(handler)),
                cache_size=args.cache_size,
            )
            loop.run_until_complete(their_async.start())
            their_sync.start()
            tarun, tsrun = async_timer(their_async, loop), partial(timed, their_sync.verify)
            for _ in range(2):
                tarun(warm)
                tsrun(warm)
            contenders["--against TokenVerifier (async, cold)"] = tarun
            contenders["--against SyncTokenVerifier (cold)"] = tsrun
        for name, fn in contenders.items():  # a correctness check of the peers (s2s: warm-up above)
            if not name.startswith("s2s"):
                fn(warm[:20])
        samples = compare(contenders, tokens, args.chunk)
        floor = statistics.median(samples[floor_name])
        print(f"== {alg}")
        for name, values in samples.items():
            med = statistics.median(values)
            paired = statistics.median(v / f for v, f in zip(values, samples[floor_name], strict=True))
            print(
                f"  {name:40s} {med:8.2f} µs (best {min(values):7.2f})   {med / floor:5.3f}x floor"
                f"   (per chunk {paired:5.3f}x)"
            )
        print()

    assert averifier is not None and sverifier is not None
    same = [mint_tokens(keys["ES256"], 1, "same")[0]] * 2000
    arun, srun = async_timer(averifier, loop), partial(timed, sverifier.verify)
    for _ in range(3):  # first and second sight, then cached
        arun(same[:10])
        srun(same[:10])
    rep_async = [arun(same) for _ in range(20)]
    rep_sync = [srun(same) for _ in range(20)]
    print("== repeated token (served from the verified-token cache), gc on")
    print(f"  s2s TokenVerifier (async)  {statistics.median(rep_async):6.2f} µs (best {min(rep_async):5.2f})")
    print(f"  s2s SyncTokenVerifier      {statistics.median(rep_sync):6.2f} µs (best {min(rep_sync):5.2f})")
    loop.close()


if __name__ == "__main__":
    main()
