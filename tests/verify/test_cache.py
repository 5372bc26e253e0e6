"""The verified-token cache: no crypto for a repeated token, and no entry outlives its token or key."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from s2s.clock import FakeClock
from s2s.keys.model import SigningKey
from s2s.verify import InvalidToken, SyncTokenVerifier, TokenVerifier, VerifierConfig
from s2s.verify import verifier as verifier_module
from s2s.verify.principal import Principal
from tests.verify.conftest import AUDIENCE, ISSUER, JWKS_URL, JwksServer, Mint


@pytest.fixture
def crypto_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = verifier_module.check_signature

    def counting(*args: Any) -> None:
        calls.append(1)
        real(*args)

    monkeypatch.setattr(verifier_module, "check_signature", counting)
    return calls


def test_repeated_token_costs_no_crypto(verifier: TokenVerifier, mint: Mint, crypto_calls: list[int]) -> None:
    token = mint()

    async def many() -> set[int]:
        return {id(await verifier.verify(token)) for _ in range(100)}

    assert len(asyncio.run(many())) == 1
    assert len(crypto_calls) == 1


def test_sync_twin_caches_too(sync_verifier: SyncTokenVerifier, mint: Mint, crypto_calls: list[int]) -> None:
    token = mint()
    for _ in range(10):
        sync_verifier.verify(token)
    assert len(crypto_calls) == 1


def test_entry_gone_after_exp(
    verifier: TokenVerifier, mint: Mint, clock: FakeClock, crypto_calls: list[int]
) -> None:
    token = mint()
    asyncio.run(verifier.verify(token))
    clock.advance(300)  # at exp: the cache no longer serves it; the full path still allows the leeway
    asyncio.run(verifier.verify(token))
    assert len(crypto_calls) == 2
    clock.advance(30)
    with pytest.raises(InvalidToken, match="token expired"):
        asyncio.run(verifier.verify(token))


def test_entry_gone_when_key_leaves_jwks(
    key: SigningKey, keyring: dict[str, SigningKey], clock: FakeClock, mint: Mint, crypto_calls: list[int]
) -> None:
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [key], cache_control="max-age=60")
    v = TokenVerifier(VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=srv.async_client(), clock=clock)
    token = mint(exp=int(clock.now()) + 3600)
    asyncio.run(v.verify(token))
    asyncio.run(v.verify(token))
    assert len(crypto_calls) == 1
    srv.serve_keys(JWKS_URL, [keyring["es2"]])  # the key is withdrawn (revoked)
    clock.advance(61)
    with pytest.raises(InvalidToken, match="unknown key"):
        asyncio.run(v.verify(token))
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
    asyncio.run(v.verify(token))
    replacement = {**keyring["es2"].public_jwk_entry(), "kid": key.kid}
    srv.serve_keys(JWKS_URL, [replacement])
    clock.advance(61)
    # Another caller's request refetches the key set first.
    with pytest.raises(InvalidToken, match="signature invalid"):
        asyncio.run(v.verify(mint(exp=int(clock.now()) + 3600, jti="another")))
    assert srv.total == 2
    with pytest.raises(InvalidToken, match="signature invalid"):
        asyncio.run(v.verify(token))
    assert len(crypto_calls) == 3


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
    with pytest.raises(InvalidToken, match="token too old"):
        asyncio.run(v.verify(token))


def test_cache_is_bounded(server: JwksServer, clock: FakeClock, mint: Mint, crypto_calls: list[int]) -> None:
    v = TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=server.async_client(), clock=clock, cache_size=2
    )
    tokens = [mint(jti=str(i)) for i in range(3)]

    async def go() -> None:
        for t in tokens:
            await v.verify(t)
        await v.verify(tokens[2])  # still cached
        await v.verify(tokens[0])  # evicted: verified again

    asyncio.run(go())
    assert len(v._core._cache) == 2
    assert len(crypto_calls) == 4


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
    with pytest.raises(InvalidToken, match="token revoked"):
        asyncio.run(v.verify(token))
    assert len(seen) == 2
