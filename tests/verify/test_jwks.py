"""JWKS source behaviour, with a FakeClock and a counting MockTransport."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.keys.model import SigningKey
from s2s.verify import InvalidToken, SyncTokenVerifier, TokenVerifier, VerifierConfig
from s2s.verify.algorithms import AlgorithmPolicy
from s2s.verify.jwks import JWKSError, parse_jwks, ttl_from_cache_control
from tests.verify.conftest import AUDIENCE, ISSUER, JWKS_URL, JwksServer, Mint, b64, base_claims, forge


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


def test_unknown_kid_within_cooldown_does_not_fetch(
    one_key_server: JwksServer, clock: FakeClock, mint: Mint
) -> None:
    v = make(one_key_server, clock)
    run(v.verify(mint()))
    for kid in ("a", "b", "c"):
        with pytest.raises(InvalidToken, match="unknown key"):
            run(v.verify(unknown_kid_token(clock, kid)))
    assert one_key_server.total == 1
    clock.advance(30)
    with pytest.raises(InvalidToken, match="unknown key"):
        run(v.verify(unknown_kid_token(clock, "d")))
    assert one_key_server.total == 2
    # "d" is remembered as unknown until the next fetch: no I/O for it, even after the cooldown.
    clock.advance(30)
    with pytest.raises(InvalidToken, match="unknown key"):
        run(v.verify(unknown_kid_token(clock, "d")))
    assert one_key_server.total == 2
    # A different unknown kid after the cooldown does fetch (and resets the remembered set).
    with pytest.raises(InvalidToken, match="unknown key"):
        run(v.verify(unknown_kid_token(clock, "e")))
    assert one_key_server.total == 3


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
    run(v.verify(mint()))
    one_key_server.down = True
    clock.advance(700)  # TTL over: a refetch is attempted and fails
    run(v.verify(mint(jti="a")))
    assert one_key_server.total == 2
    clock.advance(10)  # within the cooldown after the failure: no new attempt
    run(v.verify(mint(jti="b")))
    assert one_key_server.total == 2
    clock.advance(3600 - 710 + 1)  # the last good keys are now older than max_staleness
    with pytest.raises(InvalidToken, match="signing keys unavailable"):
        run(v.verify(mint(jti="c")))
    one_key_server.down = False
    clock.advance(31)
    run(v.verify(mint(jti="d")))


def test_error_status_counts_as_outage(one_key_server: JwksServer, clock: FakeClock, mint: Mint) -> None:
    v = make(one_key_server, clock)
    run(v.verify(mint()))
    one_key_server.serve(JWKS_URL, {"error": "boom"}, status=500)
    clock.advance(601)
    run(v.verify(mint(jti="a")))
    assert one_key_server.total == 2


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
    run(v.verify(mint()))
    clock.advance(119)
    run(v.verify(mint(jti="a")))
    assert srv.total == 1
    clock.advance(2)
    run(v.verify(mint(jti="b")))
    assert srv.total == 2


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
    with pytest.raises(InvalidToken, match="signing keys unavailable"):
        run(v.verify(mint()))
    with pytest.raises(JWKSError):
        parse_jwks({"keys": [{}] * 6}, AlgorithmPolicy(), max_keys=5)


def test_jwks_body_cap(key: SigningKey, clock: FakeClock, mint: Mint) -> None:
    srv = JwksServer()
    srv.serve(JWKS_URL, {"keys": [key.public_jwk_entry()], "padding": "x" * 5000})
    v = make(srv, clock, max_jwks_bytes=4096)
    with pytest.raises(InvalidToken, match="signing keys unavailable"):
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
    with pytest.raises(InvalidToken, match="signing keys unavailable"):
        run(v.verify(token))
    sv = SyncTokenVerifier(config, http_client=httpx.Client(transport=httpx.MockTransport(slow)), clock=clock)
    with pytest.raises(InvalidToken, match="signing keys unavailable"):
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
    with pytest.raises(InvalidToken, match="signing keys unavailable"):
        run(v.verify(mint()))
    assert srv.requests[JWKS_URL] == 0 and srv.requests["http://evil.test/jwks"] == 0


def test_redirects_are_not_followed(key: SigningKey, clock: FakeClock, mint: Mint) -> None:
    srv = JwksServer()
    srv.serve(JWKS_URL, b"", status=302, headers={"Location": "https://evil.test/jwks"})
    srv.serve_keys("https://evil.test/jwks", [key])
    with pytest.raises(InvalidToken):
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
    with pytest.raises(InvalidToken, match="unknown key"):  # within the cooldown
        v.verify(mint(signing_key=keyring["es2"]))
    clock.advance(31)
    v.verify(mint(signing_key=keyring["es2"], jti="b"))
    assert one_key_server.total == 2
    one_key_server.down = True
    clock.advance(700)
    v.verify(mint(jti="c"))
    clock.advance(3600)
    with pytest.raises(InvalidToken, match="signing keys unavailable"):
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
