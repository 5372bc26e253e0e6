"""JWKS source behaviour: a FakeClock and a counting MockTransport, and real 127.0.0.1 servers for
the hosts that hang or trickle (httpx's per-read timeouts are what those get past)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.jose import AlgorithmPolicy
from s2s.keys import SigningKey
from s2s.verify import (
    InvalidToken,
    JWKSError,
    KeysUnavailable,
    SyncTokenVerifier,
    TokenVerifier,
    UnknownKey,
    VerifierConfig,
)
from s2s.verify._jwks import parse_jwks, ttl_from_cache_control
from tests.verify.conftest import AUDIENCE, ISSUER, JWKS_URL, JwksServer, Mint, b64, base_claims, forge
from tests.verify.slow_server import Route, SlowServer, elapsed


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def make(server: JwksServer, clock: FakeClock, **options: Any) -> TokenVerifier:
    return TokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, **options), http_client=server.async_client(), clock=clock
    )


@pytest.fixture
def one_key_server(key: SigningKey) -> JwksServer:
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [key])
    return srv


def unknown_kid_token(clock: FakeClock, kid: str) -> str:
    return forge({"alg": "ES256", "kid": kid, "typ": "at+jwt"}, base_claims(clock)) + "AAAA"


def test_rotation_picked_up_after_one_refetch(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint, keyring: dict[str, SigningKey]
) -> None:
    v = make(one_key_server, clock)
    run(v.verify(mint()))
    assert one_key_server.total == 1
    new = keyring["es2"]
    one_key_server.serve_keys(JWKS_URL, [keyring["es"], new])
    clock.advance(31)  # past the cooldown that followed the first fetch
    assert run(v.verify(mint(signing_key=new))).subject == "billing-service"
    assert one_key_server.total == 2
    run(v.verify(mint(signing_key=new, jti="again")))
    assert one_key_server.total == 2


def test_kid_unknown_at_the_last_fetch_is_looked_up_again_after_the_cooldown(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    v = make(one_key_server, clock)
    run(v.verify(mint()))
    for kid in ("a", "b", "c"):
        with pytest.raises(UnknownKey, match="unknown key"):
            run(v.verify(unknown_kid_token(clock, kid)))
    assert one_key_server.total == 1  # within the cooldown: no fetch, whatever the kid
    clock.advance(30)
    with pytest.raises(UnknownKey, match="unknown key"):
        run(v.verify(unknown_kid_token(clock, "d")))
    assert one_key_server.total == 2
    # "d" was unknown at that fetch; once the cooldown has passed it is looked up again (a key
    # published meanwhile, by a forced rotation, is found), not remembered as missing until the
    # key set expires (300 s and more).
    clock.advance(29)
    with pytest.raises(UnknownKey):
        run(v.verify(unknown_kid_token(clock, "d")))
    assert one_key_server.total == 2
    clock.advance(1)
    with pytest.raises(UnknownKey):
        run(v.verify(unknown_kid_token(clock, "d")))
    assert one_key_server.total == 3


def test_random_kids_cost_at_most_one_fetch_per_cooldown(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    v = make(one_key_server, clock)
    run(v.verify(mint()))
    for second in range(1, 301):  # five minutes of one random kid per second
        clock.advance(1)
        with pytest.raises(UnknownKey):
            run(v.verify(unknown_kid_token(clock, f"random-{second}")))
    assert one_key_server.total == 1 + 300 // 30


def test_thousand_concurrent_unknown_kids_cause_one_fetch(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    v = make(one_key_server, clock)
    run(v.verify(mint()))
    clock.advance(31)
    tokens = [unknown_kid_token(clock, f"kid-{i}") for i in range(1000)]

    async def storm() -> list[Any]:
        return await asyncio.gather(*(v.verify(t) for t in tokens), return_exceptions=True)

    results = run(storm())
    assert all(isinstance(r, InvalidToken) for r in results)
    assert one_key_server.total == 2


def test_thousand_concurrent_cold_verifications_share_one_fetch(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    v = make(one_key_server, clock)
    tokens = [mint(jti=str(i)) for i in range(1000)]

    async def storm() -> list[Any]:
        return await asyncio.gather(*(v.verify(t) for t in tokens))

    assert len(run(storm())) == 1000
    assert one_key_server.total == 1


def test_outage_keeps_known_keys_until_max_staleness(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    v = make(one_key_server, clock, jwks_ttl=600, max_staleness=3600)

    async def go() -> None:
        await v.verify(mint())
        one_key_server.down = True
        clock.advance(700)  # TTL over: the known key serves at once, a background refetch fails
        await v.verify(mint(jti="a"))
        await v.sources[0].wait_idle()
        assert one_key_server.total == 2
        clock.advance(10)  # within the cooldown after the failure: no new attempt
        await v.verify(mint(jti="b"))
        assert one_key_server.total == 2
        clock.advance(3600 - 710 + 1)  # the last good keys are now older than max_staleness
        with pytest.raises(KeysUnavailable, match="signing keys unavailable") as info:
            await v.verify(mint(jti="c"))
        await v.sources[0].wait_idle()
        assert (info.value.status_code, info.value.retry_after) == (503, 30)
        one_key_server.down = False
        clock.advance(31)
        await v.verify(mint(jti="d"))

    run(go())


def test_cooldown_counts_from_the_end_of_a_failed_attempt(
    key: SigningKey, clock: FakeClock, mint: Mint
) -> None:
    attempts: list[float] = []

    def slow_failure(request: httpx.Request) -> httpx.Response:
        attempts.append(clock.monotonic())
        clock.advance(4)  # the attempt takes 4 s, then fails
        raise httpx.ConnectError("down", request=request)

    v = SyncTokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, http_timeout=5),
        http_client=httpx.Client(transport=httpx.MockTransport(slow_failure)),
        clock=clock,
    )
    with pytest.raises(KeysUnavailable) as info:
        v.verify(mint())
    assert info.value.retry_after == 30
    clock.advance(27)  # 31 s after the start of the attempt, 27 s after its end
    with pytest.raises(KeysUnavailable) as info:
        v.verify(mint(jti="b"))
    assert len(attempts) == 1 and info.value.retry_after == 3
    clock.advance(3)
    with pytest.raises(KeysUnavailable):
        v.verify(mint(jti="c"))
    assert len(attempts) == 2


def test_error_status_counts_as_outage(one_key_server: JwksServer, clock: FakeClock, mint: Mint) -> None:
    v = make(one_key_server, clock)

    async def go() -> None:
        await v.verify(mint())
        one_key_server.serve(JWKS_URL, {"error": "boom"}, status=500)
        clock.advance(601)
        await v.verify(mint(jti="a"))
        await v.sources[0].wait_idle()

    run(go())
    assert one_key_server.total == 2
    assert v.sources[0].last_error == f"{JWKS_URL}: HTTP 500"


@pytest.mark.parametrize(
    ("header", "ttl"),
    [
        (None, 600),
        ("max-age=5", 60),
        ("public, max-age=900", 900),
        ("max-age=99999999", 86_400),
        ("no-store", 60),
        ("no-cache, max-age=900", 60),
        ("max-age=abc", 600),
    ],
)
def test_cache_control_ttl_is_clamped(header: str | None, ttl: float) -> None:
    assert ttl_from_cache_control(header, VerifierConfig.for_s2s(ISSUER, AUDIENCE)) == ttl


def test_cache_control_drives_refetch(key: SigningKey, clock: FakeClock, mint: Mint) -> None:
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [key], cache_control="max-age=120")
    v = make(srv, clock)

    async def go() -> None:
        await v.verify(mint())
        clock.advance(119)
        await v.verify(mint(jti="a"))
        assert srv.total == 1
        clock.advance(2)
        await v.verify(mint(jti="b"))  # served from the last good keys, refetched behind
        await v.sources[0].wait_idle()
        assert srv.total == 2

    run(go())


def test_short_max_age_is_honoured_or_refused_loudly(
    key: SigningKey, clock: FakeClock, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [key], cache_control="max-age=10")
    caplog.set_level(logging.WARNING, "s2s.verify.jwks")
    # Default floor (60 s): the issuer's 10 s is not silently stretched: a warning says so, once.
    v = make(srv, clock)
    run(v.verify(mint()))
    run(v.verify(mint(jti="again")))
    warnings = [r.getMessage() for r in caplog.records if "max-age=10" in r.getMessage()]
    assert len(warnings) == 1 and "jwks_min_ttl=60" in warnings[0] and ISSUER in warnings[0]
    assert v.describe()[0]["keys_fresh"]
    clock.advance(11)
    assert v.describe()[0]["keys_fresh"]
    # A floor at or below the max-age honours it exactly.
    honouring = make(srv, clock, jwks_min_ttl=5)
    run(honouring.verify(mint(jti="h")))
    assert honouring.describe()[0]["keys_fresh"]
    clock.advance(10)
    assert not honouring.describe()[0]["keys_fresh"]


def test_bad_keys_dropped_one_by_one(
    keyring: dict[str, SigningKey], clock: FakeClock, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    good = keyring["es"].public_jwk_entry()
    ec_private = dict(keyring["es2"].private_jwk or {}) | {"kid": "with-private", "alg": "ES256"}
    rsa_small = {"kty": "RSA", "kid": "rsa-1024", "n": b64(b"\xc1" + bytes(127)), "e": "AQAB"}
    bad_point = dict(good) | {"kid": "bad-point", "y": good["x"]}
    entries: list[dict[str, Any]] = [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        rsa_small,
        ec_private,
        dict(good) | {"kid": "enc", "use": "enc"},
        bad_point,
        {"kty": "XYZ", "kid": "weird"},
        {"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": b64(bytes(57))},
        dict(keyring["es2"].public_jwk_entry()) | {"kid": "dup"},
        dict(keyring["es_other"].public_jwk_entry()) | {"kid": "dup"},
        "not-an-object",  # type: ignore[list-item]
        good,
    ]
    keys, dropped = parse_jwks({"keys": entries}, AlgorithmPolicy.of(["ES256", "RS256"]), max_keys=64)
    assert list(keys) == [good["kid"]]
    assert len(dropped) == len(entries) - 1
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, entries)
    caplog.set_level("DEBUG")
    run(make(srv, clock).verify(mint()))
    assert "key dropped" in caplog.text
    assert ec_private["d"] not in caplog.text


def test_jwks_with_too_many_keys_is_refused(key: SigningKey, clock: FakeClock, mint: Mint) -> None:
    srv = JwksServer()
    srv.serve_keys(JWKS_URL, [key.public_jwk_entry() | {"kid": f"k{i}"} for i in range(5)] + [key])
    v = make(srv, clock, max_keys=5)
    with pytest.raises(KeysUnavailable, match="signing keys unavailable"):
        run(v.verify(mint()))
    with pytest.raises(JWKSError):
        parse_jwks({"keys": [{}] * 6}, AlgorithmPolicy(), max_keys=5)


def test_jwks_body_cap(key: SigningKey, clock: FakeClock, mint: Mint) -> None:
    srv = JwksServer()
    srv.serve(JWKS_URL, {"keys": [key.public_jwk_entry()], "padding": "x" * 5000})
    v = make(srv, clock, max_jwks_bytes=4096)
    with pytest.raises(KeysUnavailable, match="signing keys unavailable"):
        run(v.verify(mint()))
    assert srv.total == 1


def _trickle(body: bytes, clock: FakeClock) -> Iterator[bytes]:
    """A JWKS body in small pieces, each 1 s after the last (fake clock): every read is within
    a per-read timeout, the whole body is not."""
    for i in range(0, len(body), 16):
        clock.advance(1)
        yield body[i : i + 16]


async def _atrickle(body: bytes, clock: FakeClock) -> AsyncIterator[bytes]:
    for piece in _trickle(body, clock):
        yield piece


def test_jwks_body_must_arrive_within_the_timeout(key: SigningKey, clock: FakeClock, mint: Mint) -> None:
    body = json.dumps({"keys": [key.public_jwk_entry()]}).encode()
    assert len(body) > 16 * 6  # more pieces than the 5 s allowed

    def slow(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_trickle(body, clock))

    def aslow(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_atrickle(body, clock))

    config = VerifierConfig.for_s2s(ISSUER, AUDIENCE, http_timeout=5)
    token = mint()
    v = TokenVerifier(
        config, http_client=httpx.AsyncClient(transport=httpx.MockTransport(aslow)), clock=clock
    )
    with pytest.raises(KeysUnavailable, match="signing keys unavailable"):
        run(v.verify(token))
    sv = SyncTokenVerifier(config, http_client=httpx.Client(transport=httpx.MockTransport(slow)), clock=clock)
    with pytest.raises(KeysUnavailable, match="signing keys unavailable"):
        sv.verify(token)
    # The same body sent at once is accepted: the deadline is what refused it.
    fast = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body)))
    assert SyncTokenVerifier(config, http_client=fast, clock=clock).verify(token).subject


@pytest.mark.parametrize(
    "url", ["http://issuer.test/jwks", "ftp://issuer.test/jwks", "https:///jwks", "http://10.0.0.1/k"]
)
def test_non_https_jwks_uri_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, jwks_uri=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"]
)
def test_loopback_http_allowed(url: str) -> None:
    assert VerifierConfig.for_s2s(ISSUER, AUDIENCE, jwks_uri=url).jwks_uri == url


def test_discovery_openid_configuration(key: SigningKey, clock: FakeClock, mint: Mint) -> None:
    srv = JwksServer()
    srv.serve(f"{ISSUER}/.well-known/openid-configuration", {"issuer": ISSUER, "jwks_uri": JWKS_URL})
    srv.serve_keys(JWKS_URL, [key])
    v = TokenVerifier(
        VerifierConfig.from_discovery(ISSUER, AUDIENCE), http_client=srv.async_client(), clock=clock
    )
    run(v.verify(mint()))
    assert v.describe()[0]["jwks_uri"] == JWKS_URL


def test_discovery_falls_back_to_rfc8414(key: SigningKey, clock: FakeClock, mint: Mint) -> None:
    issuer = "https://idp.test/tenant-a"
    srv = JwksServer()
    srv.serve(
        "https://idp.test/.well-known/oauth-authorization-server/tenant-a",
        {"issuer": issuer, "jwks_uri": JWKS_URL},
    )
    srv.serve_keys(JWKS_URL, [key])
    v = TokenVerifier(
        VerifierConfig.from_discovery(issuer, AUDIENCE), http_client=srv.async_client(), clock=clock
    )
    run(v.verify(mint(iss=issuer)))
    assert srv.requests[f"{issuer}/.well-known/openid-configuration"] == 1


@pytest.mark.parametrize(
    "doc",
    [
        {"issuer": "https://evil.test", "jwks_uri": JWKS_URL},
        {"issuer": ISSUER, "jwks_uri": "http://evil.test/jwks"},
        {"issuer": ISSUER},
        ["not", "an", "object"],
    ],
)
def test_bad_discovery_documents_are_not_used(
    doc: Any, key: SigningKey, clock: FakeClock, mint: Mint
) -> None:
    srv = JwksServer()
    srv.serve(f"{ISSUER}/.well-known/openid-configuration", doc)
    srv.serve_keys(JWKS_URL, [key])
    srv.serve_keys("http://evil.test/jwks", [key])
    v = TokenVerifier(
        VerifierConfig.from_discovery(ISSUER, AUDIENCE), http_client=srv.async_client(), clock=clock
    )
    with pytest.raises(KeysUnavailable, match="signing keys unavailable"):
        run(v.verify(mint()))
    assert srv.requests[JWKS_URL] == 0 and srv.requests["http://evil.test/jwks"] == 0


def test_redirects_are_not_followed(key: SigningKey, clock: FakeClock, mint: Mint) -> None:
    srv = JwksServer()
    srv.serve(JWKS_URL, b"", status=302, headers={"Location": "https://evil.test/jwks"})
    srv.serve_keys("https://evil.test/jwks", [key])
    with pytest.raises(KeysUnavailable):
        run(make(srv, clock).verify(mint()))
    assert srv.requests["https://evil.test/jwks"] == 0


# -- the sync twin -------------------------------------------------------------------------------


def test_sync_rotation_and_outage(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint, keyring: dict[str, SigningKey]
) -> None:
    v = SyncTokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE, max_staleness=3600),
        http_client=one_key_server.sync_client(),
        clock=clock,
    )
    v.verify(mint())
    one_key_server.serve_keys(JWKS_URL, [keyring["es"], keyring["es2"]])
    with pytest.raises(UnknownKey, match="unknown key"):  # within the cooldown
        v.verify(mint(signing_key=keyring["es2"]))
    clock.advance(31)
    v.verify(mint(signing_key=keyring["es2"], jti="b"))
    assert one_key_server.total == 2
    one_key_server.down = True
    clock.advance(700)
    v.verify(mint(jti="c"))  # the last good keys serve; the background refetch fails
    assert v.sources[0].wait_idle(10)
    assert one_key_server.total == 3
    clock.advance(3600)
    with pytest.raises(KeysUnavailable, match="signing keys unavailable"):
        v.verify(mint(jti="d"))


def test_sync_concurrent_threads_share_one_fetch(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    v = SyncTokenVerifier(
        VerifierConfig.for_s2s(ISSUER, AUDIENCE), http_client=one_key_server.sync_client(), clock=clock
    )
    tokens = [mint(jti=str(i)) for i in range(40)]
    barrier = threading.Barrier(len(tokens))
    results: list[str] = []

    def work(token: str) -> None:
        barrier.wait()
        results.append(v.verify(token).subject)

    threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40
    assert one_key_server.total == 1


# -- hung and trickling hosts (real sockets on 127.0.0.1) ---------------------------------------


def _real_config(server: SlowServer, **options: Any) -> VerifierConfig:
    return VerifierConfig.for_s2s(ISSUER, AUDIENCE, jwks_uri=f"{server.url}/jwks", **options)


@pytest.mark.parametrize("flavour", ["async", "sync"])
def test_trickling_host_cannot_hold_verify_past_the_deadline(
    flavour: str, clock: FakeClock, mint: Mint
) -> None:
    """Headers at one byte per 0.5 s: every read is within httpx's timeout, the exchange never ends
    (20 s here, then the server gives up). One total deadline (1 s) bounds every caller, and all
    the concurrent callers share the one fetch."""
    server = SlowServer({"/jwks": Route(trickle=0.5)})
    tokens = [mint(jti=str(i)) for i in range(20)]
    with server.running():
        config = _real_config(server, http_timeout=1)
        start = time.monotonic()
        if flavour == "async":
            verifier = TokenVerifier(config, clock=clock)

            async def storm() -> list[Any]:
                return await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)

            results = run(storm())
        else:
            sync_verifier = SyncTokenVerifier(config, clock=clock)
            results = []

            def work(token: str) -> None:
                try:
                    sync_verifier.verify(token)
                except Exception as exc:
                    results.append(exc)

            threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        took = elapsed(start)
    assert took < 1 + 2, f"verify() was held {took:.1f} s by a trickling JWKS host"
    assert len(results) == 20 and all(isinstance(r, KeysUnavailable) for r in results)
    assert server.connections == 1


def test_total_deadline_covers_discovery_and_jwks(clock: FakeClock, mint: Mint, key: SigningKey) -> None:
    """Discovery and the JWKS each answer in 0.7 s: each is within a 1 s per-request timeout, the two
    together are not within the one 1 s deadline of the refresh. (The verifiers run on the system
    clock here: the deadline is about time really spent.)"""
    clock.set(time.time())
    server = SlowServer()
    with server.running():
        issuer = server.url  # an http loopback issuer: its discovered http jwks_uri is allowed
        server.routes["/.well-known/openid-configuration"] = Route(
            body={"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}, delay=0.7
        )
        server.routes["/jwks"] = Route(body={"keys": [key.public_jwk_entry()]}, delay=0.7)
        slow = TokenVerifier(VerifierConfig.from_discovery(issuer, AUDIENCE, http_timeout=1))
        with pytest.raises(KeysUnavailable):
            run(slow.verify(mint(iss=issuer)))
        # The same host within a deadline that covers both requests: the keys load.
        patient = TokenVerifier(VerifierConfig.from_discovery(issuer, AUDIENCE, http_timeout=10))
        assert run(patient.verify(mint(iss=issuer, jti="ok"))).issuer == issuer
        assert patient.describe()[0]["jwks_uri"] == f"{issuer}/jwks"


def _until(condition: Any, seconds: float = 10) -> bool:
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.02)
    return bool(condition())


@pytest.mark.parametrize("flavour", ["async", "sync"])
def test_known_kids_are_served_at_once_while_the_refetch_hangs(
    flavour: str, clock: FakeClock, mint: Mint, key: SigningKey
) -> None:
    """Past the TTL, a hung JWKS host (30 s deadline) delays no request for a known kid: the last
    good keys serve them while ONE background refetch waits; an unknown kid waits for that refetch,
    and no longer than its deadline."""
    server = SlowServer({"/jwks": Route(body={"keys": [key.public_jwk_entry()]})})
    tokens = [mint(jti=str(i), exp=int(clock.now()) + 3600) for i in range(20)]
    with server.running():
        config = _real_config(server, http_timeout=30, jwks_ttl=600)
        if flavour == "async":
            verifier = TokenVerifier(config, clock=clock)

            async def go() -> float:
                await verifier.verify(mint(jti="first"))
                server.routes["/jwks"] = Route(body=None)  # from now on the host hangs
                clock.advance(601)
                start = time.monotonic()
                principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))
                took = elapsed(start)
                assert len(principals) == 20
                for _ in range(500):  # let the background refetch reach the host
                    if len(server.requests) == 2:
                        break
                    await asyncio.sleep(0.02)
                return took

            took = run(go())
        else:
            sync_verifier = SyncTokenVerifier(config, clock=clock)
            sync_verifier.verify(mint(jti="first"))
            server.routes["/jwks"] = Route(body=None)
            clock.advance(601)
            start = time.monotonic()
            for t in tokens:
                sync_verifier.verify(t)
            took = elapsed(start)
            assert _until(lambda: len(server.requests) == 2)
            assert not sync_verifier.sources[0].wait_idle(0)  # the refetch still hangs
        assert took < 10, f"known kids waited {took:.1f} s for a hung refetch"
        assert server.requests == ["/jwks", "/jwks"]


@pytest.mark.parametrize("flavour", ["async", "sync"])
def test_unknown_kid_waits_no_longer_than_the_refetch_deadline(
    flavour: str, clock: FakeClock, mint: Mint, key: SigningKey
) -> None:
    server = SlowServer({"/jwks": Route(body={"keys": [key.public_jwk_entry()]})})
    with server.running():
        config = _real_config(server, http_timeout=1)
        stranger = unknown_kid_token(clock, "new-key")
        if flavour == "async":
            verifier = TokenVerifier(config, clock=clock)
            run(verifier.verify(mint()))
            server.routes["/jwks"] = Route(body=None)
            clock.advance(31)
            start = time.monotonic()
            with pytest.raises(KeysUnavailable) as info:
                run(verifier.verify(stranger))
        else:
            sync_verifier = SyncTokenVerifier(config, clock=clock)
            sync_verifier.verify(mint())
            server.routes["/jwks"] = Route(body=None)
            clock.advance(31)
            start = time.monotonic()
            with pytest.raises(KeysUnavailable) as info:
                sync_verifier.verify(stranger)
        took = elapsed(start)
    # The fetch failed, so "unknown" may only mean "not fetched": 503 + Retry-After, not 401.
    assert took < 1 + 2 and info.value.retry_after == 30


def test_no_usable_keys_is_503_and_the_log_names_the_failed_url(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    one_key_server.down = True
    token = mint()
    with pytest.raises(KeysUnavailable) as info:
        run(make(one_key_server, clock).verify(token))
    exc = info.value
    assert (exc.status_code, exc.retry_after, exc.description) == (503, 30, "signing keys unavailable")
    assert not isinstance(exc, InvalidToken)
    assert exc.__context__ is None and exc.__cause__ is None
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(JWKS_URL in m and "ConnectError" in m for m in failures), failures
    for part in token.split("."):
        assert part not in caplog.text


def test_discovery_cannot_point_an_https_issuer_at_plain_http_on_loopback(
    key: SigningKey, clock: FakeClock, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    srv = JwksServer()
    srv.serve(
        f"{ISSUER}/.well-known/openid-configuration", {"issuer": ISSUER, "jwks_uri": "http://127.0.0.1:6379/"}
    )
    srv.serve(
        "https://issuer.test/.well-known/oauth-authorization-server",
        {"issuer": ISSUER, "jwks_uri": "http://localhost:6379/keys"},
    )
    srv.serve_keys("http://127.0.0.1:6379/", [key])
    srv.serve_keys("http://localhost:6379/keys", [key])
    caplog.set_level(logging.WARNING)
    v = TokenVerifier(
        VerifierConfig.from_discovery(ISSUER, AUDIENCE), http_client=srv.async_client(), clock=clock
    )
    with pytest.raises(KeysUnavailable):
        run(v.verify(mint()))
    assert srv.requests["http://127.0.0.1:6379/"] == 0 and srv.requests["http://localhost:6379/keys"] == 0
    assert "must use https" in caplog.text
