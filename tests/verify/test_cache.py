"""The verified-token cache: no crypto for a repeated token, and no entry outlives its token or key."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from s2s.clock import FakeClock
from s2s.keys import SigningKey
from s2s.observe import Observer
from s2s.verify import (
    BadSignature,
    ExpiredToken,
    Principal,
    SyncTokenVerifier,
    TokenRevoked,
    TokenTooOld,
    TokenVerifier,
    UnknownKey,
    VerifierConfig,
)
from s2s.verify import _verifier as verifier_module
from tests.verify.conftest import AUDIENCE, ISSUER, JWKS_URL, JwksServer, Mint, base_claims, forge


@pytest.fixture
def crypto_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = verifier_module.check_signature

    def counting(*args: Any) -> None:
        calls.append(1)
        real(*args)

    monkeypatch.setattr(verifier_module, "check_signature", counting)
    return calls


def test_repeated_token_costs_no_crypto_once_it_came_back(
    verifier: TokenVerifier, mint: Mint, crypto_calls: list[int]
) -> None:
    token = mint()

    async def many() -> list[int]:
        return [id(await verifier.verify(token)) for _ in range(100)]

    ids = asyncio.run(many())
    # Verified on first sight and again when it comes back (then cached): 2 checks, not 100.
    assert len(crypto_calls) == 2
    assert len(set(ids[1:])) == 1


def test_sync_twin_caches_too(sync_verifier: SyncTokenVerifier, mint: Mint, crypto_calls: list[int]) -> None:
    token = mint()
    for _ in range(10):
        sync_verifier.verify(token)
    assert len(crypto_calls) == 2


def test_tokens_seen_once_never_push_out_the_tokens_that_come_back(
    server: JwksServer, clock: FakeClock, mint: Mint, crypto_calls: list[int]
) -> None:
    v = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=server.async_client(), clock=clock, cache_size=2
    )
    hot = mint(jti="hot")
    once = [mint(jti=f"once-{i}") for i in range(50)]

    async def go() -> None:
        await v.verify(hot)
        await v.verify(hot)  # came back: cached
        for t in once:  # a stream of tokens each used once (new callers, a token per request)
            await v.verify(t)
        await v.verify(hot)

    asyncio.run(go())
    assert len(crypto_calls) == 2 + 50
    assert len(v._core.cache) == 1


def test_entry_gone_after_exp(
    verifier: TokenVerifier, mint: Mint, clock: FakeClock, crypto_calls: list[int]
) -> None:
    token = mint()
    asyncio.run(verifier.verify(token))
    clock.advance(300)  # at exp: the cache no longer serves it; the full path still allows the leeway
    asyncio.run(verifier.verify(token))
    assert len(crypto_calls) == 2
    clock.advance(30)
    with pytest.raises(ExpiredToken, match="token expired"):
        asyncio.run(verifier.verify(token))


def test_entry_gone_when_key_leaves_jwks(
    key: SigningKey, keyring: dict[str, SigningKey], clock: FakeClock, mint: Mint, crypto_calls: list[int]
) -> None:
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [key], cache_control="max-age=60")
    v = TokenVerifier(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=srv.async_client(), clock=clock)
    token = mint(exp=int(clock.now()) + 3600)

    async def go() -> None:
        for _ in range(3):
            await v.verify(token)
        assert len(crypto_calls) == 2  # first sight, and when it came back (then cached)
        srv.serve_keys(JWKS_URL, [keyring["es2"]])  # the key is withdrawn (revoked)
        clock.advance(61)
        # Past the TTL the last good keys still serve (stale while revalidate) while ONE
        # background refetch runs; once it is in, the withdrawn key's tokens are refused.
        await v.verify(token)
        await v.sources[0].wait_idle()
        with pytest.raises(UnknownKey, match="unknown key"):
            await v.verify(token)

    asyncio.run(go())
    assert srv.total == 2


def test_entry_gone_when_its_kid_is_reused_for_another_key(
    key: SigningKey, keyring: dict[str, SigningKey], clock: FakeClock, mint: Mint, crypto_calls: list[int]
) -> None:
    # An issuer that replaces a (compromised) key but keeps its kid: tokens the old key signed
    # must not keep being served from the cache.
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [key], cache_control="max-age=60")
    v = TokenVerifier(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=srv.async_client(), clock=clock)
    token = mint(exp=int(clock.now()) + 3600)

    async def go() -> None:
        await v.verify(token)
        replacement = {**keyring["es2"].public_jwk_entry(), "kid": key.kid}
        srv.serve_keys(JWKS_URL, [replacement])
        clock.advance(61)
        # A token of the new key meets the expired key set first: checked against the last good
        # key (not its signer) it is refused, and the refetch starts behind it.
        header = {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}
        fresh = forge(header, base_claims(clock, exp=int(clock.now()) + 3600, jti="new"), key=keyring["es2"])
        with pytest.raises(BadSignature, match="signature invalid"):
            await v.verify(fresh)
        await v.sources[0].wait_idle()
        assert (await v.verify(fresh)).token_id == "new"
        with pytest.raises(BadSignature, match="signature invalid"):
            await v.verify(token)

    asyncio.run(go())
    assert srv.total == 2
    assert len(crypto_calls) == 4


def test_entry_survives_a_refetch_that_keeps_its_key(
    key: SigningKey, clock: FakeClock, mint: Mint, crypto_calls: list[int]
) -> None:
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [key], cache_control="max-age=60")
    v = TokenVerifier(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=srv.async_client(), clock=clock)
    token = mint(exp=int(clock.now()) + 3600)
    asyncio.run(v.verify(token))
    clock.advance(61)
    asyncio.run(v.verify(token))  # the key set expired: refetched, the same key comes back
    asyncio.run(v.verify(token))
    assert srv.total == 2
    assert len(crypto_calls) == 2


def test_entry_respects_max_token_age(server: JwksServer, clock: FakeClock, mint: Mint) -> None:
    v = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, max_token_age=60, leeway=0),
        http_client=server.async_client(),
        clock=clock,
    )
    token = mint()
    asyncio.run(v.verify(token))
    clock.advance(61)
    with pytest.raises(TokenTooOld, match="token too old"):
        asyncio.run(v.verify(token))


def test_cache_is_bounded(server: JwksServer, clock: FakeClock, mint: Mint, crypto_calls: list[int]) -> None:
    v = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=server.async_client(), clock=clock, cache_size=2
    )
    tokens = [mint(jti=str(i)) for i in range(3)]

    async def go() -> None:
        for t in tokens:
            await v.verify(t)
            await v.verify(t)  # came back: cached
        await v.verify(tokens[2])  # still cached
        await v.verify(tokens[0])  # evicted: verified again

    asyncio.run(go())
    assert len(v._core.cache) == 2
    assert len(crypto_calls) == 7


def test_revocation_hook_runs_on_cache_hits(server: JwksServer, clock: FakeClock, mint: Mint) -> None:
    revoked: set[str] = set()
    seen: list[Principal] = []

    async def check(p: Principal) -> bool:
        seen.append(p)
        return p.token_id in revoked

    v = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, revocation_check=check),
        http_client=server.async_client(),
        clock=clock,
    )
    token = mint(jti="t-1")
    asyncio.run(v.verify(token))
    revoked.add("t-1")
    with pytest.raises(TokenRevoked, match="token revoked"):
        asyncio.run(v.verify(token))
    assert len(seen) == 2


class _Hits(Observer):
    """An observer recording the verifications it is told of."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, bool]] = []

    def verified(self, issuer: str, refusal: str | None, cached: bool) -> None:
        self.events.append((issuer, refusal, cached))


def _observed(server: JwksServer, clock: FakeClock, **config: Any) -> tuple[TokenVerifier, _Hits]:
    hits = _Hits()
    v = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, **config),
        http_client=server.async_client(),
        clock=clock,
        observer=hits,
    )
    return v, hits


def test_cached_answers_a_token_that_came_back_without_io_or_a_coroutine(
    server: JwksServer, clock: FakeClock, mint: Mint, crypto_calls: list[int]
) -> None:
    v, hits = _observed(server, clock)
    token = mint(jti="c-1")
    assert v.verify_cached(token) is None  # never seen
    first = asyncio.run(v.verify(token))
    assert v.verify_cached(token) is None  # seen once: not cached yet
    asyncio.run(v.verify(token))
    fetches, checks = server.total, len(crypto_calls)
    principal = v.verify_cached(token)
    assert principal is not None and principal == first and principal.token_id == "c-1"
    assert (server.total, len(crypto_calls)) == (fetches, checks)
    assert hits.events[-1] == (ISSUER, None, True)  # counted as a cached verification
    clock.advance(3600)  # past exp: the entry is dropped, verify() refuses
    assert v.verify_cached(token) is None
    with pytest.raises(ExpiredToken):
        asyncio.run(v.verify(token))


def test_cached_leaves_a_token_with_a_revocation_hook_to_verify(
    server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    asked: list[str | None] = []

    def check(p: Principal) -> bool:
        asked.append(p.token_id)
        return p.token_id == "gone"

    v, _ = _observed(server, clock, revocation_check=check)
    token = mint(jti="gone")
    with pytest.raises(TokenRevoked):
        asyncio.run(v.verify(token))
    kept = mint(jti="kept")
    for _ in range(3):
        asyncio.run(v.verify(kept))
        assert v.verify_cached(kept) is None  # the hook must be asked on every use
    assert asked == ["gone", "kept", "kept", "kept"]


def test_sync_twin_has_cached_too(sync_verifier: SyncTokenVerifier, mint: Mint) -> None:
    token = mint()
    sync_verifier.verify(token)
    sync_verifier.verify(token)
    assert sync_verifier.verify_cached(token) == sync_verifier.verify(token)


def test_a_hit_after_a_refetch_checks_the_key_in_the_new_key_set(
    key: SigningKey, keyring: dict[str, SigningKey], clock: FakeClock, mint: Mint
) -> None:
    # The hit path trusts the key set it last found the key in, by identity: a refetched set
    # (a new object) is checked again, and one without the key stops the token at once.
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [key, keyring["es2"]], cache_control="max-age=60")
    v = TokenVerifier(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=srv.async_client(), clock=clock)
    token = mint(exp=int(clock.now()) + 3600)
    other = mint(signing_key=keyring["es2"], exp=int(clock.now()) + 3600)

    async def go() -> None:
        for t in (token, token, other, other):
            await v.verify(t)
        assert v.verify_cached(token) is not None and v.verify_cached(other) is not None
        srv.serve_keys(JWKS_URL, [keyring["es2"]], cache_control="max-age=60")
        clock.advance(10)  # the old set is still fresh: only its identity tells it was replaced
        await v.sources[0].refresh()  # a new key set, without `key`
        assert srv.total == 2
        assert v.verify_cached(token) is None
        assert v.verify_cached(other) is not None  # still in the new set: renewed, served

    asyncio.run(go())


def test_an_observer_subscribed_after_the_verifier_was_built_counts_its_hits(
    verifier: TokenVerifier, mint: Mint
) -> None:
    from s2s.observe import subscribe, unsubscribe

    token = mint()
    for _ in range(3):
        asyncio.run(verifier.verify(token))  # nobody observes yet
    hits = _Hits()
    subscribe(hits)
    try:
        assert verifier.verify_cached(token) is not None
        asyncio.run(verifier.verify(token))
    finally:
        unsubscribe(hits)
    assert hits.events == [(ISSUER, None, True), (ISSUER, None, True)]
