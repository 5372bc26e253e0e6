"""Verifier cost per token against the crypto floor, PyJWT and plain joserfc, in one process.

    .venv/bin/python bench/verify_bench.py [--tokens 1000] [--rounds 5] [--chunk 50]

For ES256 and RS256, each contender verifies the same fresh (never seen) tokens with keys already
loaded. The tokens are cut in small chunks and the contenders take turns on each chunk (order
rotated), so that the noise of a shared machine hits all of them alike; printed are the median
and the best chunk in microseconds per token, and the ratio of medians to the floor.

The floor is the least any correct verifier does: base64url-decode the three segments, json.loads
header and payload, one ``cryptography`` verify with a preloaded key object, and the claim checks
(iss, aud, exp, nbf, iat). The s2s cold path includes its cache insertion. "Repeated" is the same
token again and again (served from the verified-token cache).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import gc
import json
import statistics
import time
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import JWSRegistry

from s2s.keys.model import KeyState, SigningKey, generate_key
from s2s.keys.signing import LocalSigner
from s2s.verify import SyncTokenVerifier, TokenVerifier, VerifierConfig

ISSUER = "https://issuer.bench"
AUDIENCE = "orders-api"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def mint_tokens(key: SigningKey, n: int) -> list[str]:
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
                "jti": f"jti-{i}",
                "client_id": "billing-service",
                "scope": "orders:read orders:write",
            },
        )
        for i in range(n)
    ]


def public_key(key: SigningKey) -> Any:
    cls = ECKey if key.alg == "ES256" else RSAKey
    return cls.import_key(dict(key.public_jwk)).public_key


class _NoCrypto:
    def verify(self, *args: Any) -> None:
        pass


def floor_verifier(key: SigningKey, *, crypto: bool = True) -> Callable[[str], dict[str, Any]]:
    pub = public_key(key) if crypto else _NoCrypto()
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
    """Microseconds per token for one pass over ``tokens``."""
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for t in tokens:
            fn(t)
        return (time.perf_counter_ns() - start) / len(tokens) / 1000
    finally:
        gc.enable()


def async_timer(verifier: TokenVerifier, loop: asyncio.AbstractEventLoop) -> Callable[[list[str]], float]:
    async def go(tokens: list[str]) -> float:
        verify = verifier.verify
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for t in tokens:
                await verify(t)
            return (time.perf_counter_ns() - start) / len(tokens) / 1000
        finally:
            gc.enable()

    return lambda tokens: loop.run_until_complete(go(tokens))


def cold(
    verifier: TokenVerifier | SyncTokenVerifier, run: Callable[[list[str]], float]
) -> Callable[[list[str]], float]:
    def measure(tokens: list[str]) -> float:
        verifier._core._cache.clear()  # fresh tokens only: every one pays the full path
        return run(tokens)

    return measure


def compare(
    contenders: dict[str, Callable[[list[str]], float]], tokens: list[str], rounds: int, chunk: int
) -> dict[str, list[float]]:
    """Small chunks, contenders interleaved (order rotated) so that noise hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    chunks = [tokens[i : i + chunk] for i in range(0, len(tokens), chunk)]
    for r in range(rounds):
        for c, part in enumerate(chunks):
            shift = (r + c) % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(contenders[name](part))
    return samples


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def split_costs(
    key: SigningKey, verifier: SyncTokenVerifier, tokens: list[str], repeat: int
) -> dict[str, float]:
    """The signature check alone, and everything else with the signature check stubbed out.

    Short runs, best of many: robust on a noisy machine, unlike whole-verification timings.
    """
    parsed = [t.split(".") for t in tokens]
    pub = public_key(key)
    ecdsa, pkcs1, sha = ec.ECDSA(hashes.SHA256()), padding.PKCS1v15(), hashes.SHA256()
    items = []
    for h, p, s in parsed:
        sig = b64d(s)
        if key.alg == "ES256":
            sig = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        items.append((sig, f"{h}.{p}".encode()))

    def crypto_only() -> None:
        for sig, data in items[:50]:
            if key.alg == "ES256":
                pub.verify(sig, data, ecdsa)
            else:
                pub.verify(sig, data, pkcs1, sha)

    source = verifier.sources[0]
    snapshot = source._snapshot
    assert snapshot is not None
    stub = dataclasses.replace(snapshot.keys[key.kid], verify=lambda data, sig: True)
    source._snapshot = dataclasses.replace(snapshot, keys={**snapshot.keys, key.kid: stub})
    floor_nc = floor_verifier(key, crypto=False)

    def s2s_nc() -> None:
        verifier._core._cache.clear()
        for t in tokens:
            verifier.verify(t)

    def floor_only() -> None:
        for t in tokens:
            floor_nc(t)

    try:
        crypto = best_of(crypto_only, repeat) / 50 * 1e6
        rest_floor = best_of(floor_only, repeat) / len(tokens) * 1e6
        rest_s2s = best_of(s2s_nc, repeat) / len(tokens) * 1e6
    finally:
        source._snapshot = snapshot
    return {"crypto": crypto, "floor": rest_floor, "s2s": rest_s2s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=50)
    args = parser.parse_args()
    now = time.time()
    keys = {alg: generate_key(alg, now=now, state=KeyState.CURRENT) for alg in ("ES256", "RS256")}
    jwks = {"keys": [k.public_jwk_entry() for k in keys.values()]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=jwks, headers={"Cache-Control": "max-age=3600"})

    loop = asyncio.new_event_loop()
    config = VerifierConfig.for_s2s(ISSUER, AUDIENCE)
    averifier = TokenVerifier(config, http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    sverifier = SyncTokenVerifier(config, http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    loop.run_until_complete(averifier.start())
    sverifier.start()

    print(
        f"{args.tokens} fresh tokens x {args.rounds} rounds, chunks of {args.chunk}, contenders interleaved;"
        " µs per token (median and best chunk), ratio of medians to the floor\n"
    )
    floor_name = "floor (cryptography + json + claims)"
    for alg, key in keys.items():
        tokens = mint_tokens(key, args.tokens)
        contenders: dict[str, Callable[[list[str]], float]] = {
            floor_name: partial(timed, floor_verifier(key)),
            "s2s TokenVerifier (async, cold)": cold(averifier, async_timer(averifier, loop)),
            "s2s SyncTokenVerifier (cold)": cold(sverifier, partial(timed, sverifier.verify)),
            "PyJWT jwt.decode": partial(timed, pyjwt_verifier(key)),
            "joserfc jwt.decode + JWTClaimsRegistry": partial(timed, joserfc_verifier(key)),
        }
        for fn in contenders.values():  # warm-up, and a correctness check of every contender
            fn(tokens[:20])
        samples = compare(contenders, tokens, args.rounds, args.chunk)
        costs = split_costs(key, sverifier, tokens[:200], repeat=300)
        floor = statistics.median(samples[floor_name])
        print(f"== {alg}")
        for name, values in samples.items():
            med = statistics.median(values)
            print(f"  {name:40s} {med:8.2f} µs (best {min(values):7.2f})   {med / floor:5.3f}x floor")
        crypto, rest_floor, rest_s2s = costs["crypto"], costs["floor"], costs["s2s"]
        print(
            f"  split (best of 300 short runs): signature {crypto:.2f} µs; everything else: floor"
            f" {rest_floor:.2f} µs, s2s {rest_s2s:.2f} µs (+{rest_s2s - rest_floor:.2f});"
            f" s2s / floor = {(crypto + rest_s2s) / (crypto + rest_floor):.3f}"
        )
        print()

    same = [mint_tokens(keys["ES256"], 1)[0]] * 2000
    arun, srun = async_timer(averifier, loop), partial(timed, sverifier.verify)
    arun(same[:10])
    srun(same[:10])
    rep_async = [arun(same) for _ in range(20)]
    rep_sync = [srun(same) for _ in range(20)]
    print("== repeated token (served from the verified-token cache)")
    print(f"  s2s TokenVerifier (async)  {statistics.median(rep_async):6.2f} µs (best {min(rep_async):5.2f})")
    print(f"  s2s SyncTokenVerifier      {statistics.median(rep_sync):6.2f} µs (best {min(rep_sync):5.2f})")
    loop.close()


if __name__ == "__main__":
    main()
