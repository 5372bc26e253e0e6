"""Cache, refresh-ahead, single-flight, retries and typed errors, against a scripted endpoint."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import threading
import time
from typing import Any

import httpx
import pytest

from s2s.client import (
    AsyncTokenClient,
    InvalidTokenResponse,
    RefreshPolicy,
    RetryPolicy,
    TokenClient,
    TokenClientError,
    TokenEndpointUnreachable,
    TokenRequestError,
)
from s2s.clock import FakeClock
from s2s.errors import S2SError
from tests.client.helpers import SECRET, TOKEN_URL, FakeTokenEndpoint, logged, oauth_error

AUD = "https://orders.internal"


def sync_client(
    endpoint: FakeTokenEndpoint, clock: FakeClock, **options: Any
) -> tuple[TokenClient, list[float]]:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    options.setdefault("sleep", sleep)
    client = TokenClient(
        TOKEN_URL,
        client_id="svc",
        client_secret=SECRET,
        transport=httpx.MockTransport(endpoint),
        clock=clock,
        **options,
    )
    return client, sleeps


def async_client(
    endpoint: FakeTokenEndpoint, clock: FakeClock, **options: Any
) -> tuple[AsyncTokenClient, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    options.setdefault("sleep", sleep)
    client = AsyncTokenClient(
        TOKEN_URL,
        client_id="svc",
        client_secret=SECRET,
        transport=httpx.MockTransport(endpoint),
        clock=clock,
        **options,
    )
    return client, sleeps


# -- cache ----------------------------------------------------------------------------------------
def test_tokens_are_cached_per_audience_and_scope_set(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint()
    client, _ = sync_client(endpoint, clock)
    a = client.get_token(AUD, ["x", "y"])
    assert client.get_token(AUD, ["y", "x"]) is a  # a scope set: order does not matter
    assert client.get_token(AUD, "y x") is a
    b = client.get_token(AUD, ["x"])
    c = client.get_token("https://billing.internal", ["x", "y"])
    assert len({a.token, b.token, c.token}) == 3
    assert endpoint.count == 3
    assert a.scopes == ("x", "y") and a.audience == AUD
    assert a.expires_at == pytest.approx(clock.now() + 300)
    assert client.stats.cache_hits == 2


def test_access_token_repr_hides_the_token(clock: FakeClock) -> None:
    client, _ = sync_client(FakeTokenEndpoint(), clock)
    token = client.get_token(AUD)
    assert token.token == "tok-1"
    assert "tok-1" not in repr(token) and "tok-1" not in str(token)
    assert token.authorization == "Bearer tok-1"
    assert SECRET not in repr(client)


# -- refresh ahead --------------------------------------------------------------------------------
@pytest.mark.parametrize(("expires_in", "margin"), [(300, 30), (60, 10), (8, 4)])
def test_refresh_ahead_of_expiry(clock: FakeClock, expires_in: float, margin: float) -> None:
    """Refreshed when less than max(10 s, 10 %) is left; a very short token is used for half its life."""
    endpoint = FakeTokenEndpoint(expires_in=expires_in)
    client, _ = sync_client(endpoint, clock)
    first = client.get_token(AUD)
    clock.advance(expires_in - margin - 0.5)
    assert client.get_token(AUD) is first
    assert endpoint.count == 1
    clock.advance(1)
    second = client.get_token(AUD)
    assert second.token != first.token and endpoint.count == 2


def test_refresh_policy_is_configurable(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint(expires_in=300)
    client, _ = sync_client(endpoint, clock, refresh=RefreshPolicy(min_remaining=100, fraction=0))
    client.get_token(AUD)
    clock.advance(199)
    client.get_token(AUD)
    assert endpoint.count == 1
    clock.advance(2)
    client.get_token(AUD)
    assert endpoint.count == 2


def test_failed_refresh_keeps_serving_the_still_valid_token(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = FakeTokenEndpoint(expires_in=300)
    client, _ = sync_client(endpoint, clock, retry=RetryPolicy(attempts=1))
    first = client.get_token(AUD)
    clock.advance(280)
    endpoint.script = [oauth_error(503, "temporarily_unavailable")]
    assert client.get_token(AUD) is first
    assert "using the cached token" in caplog.text
    clock.advance(21)  # now expired: a failure can no longer be hidden
    endpoint.script = [oauth_error(503, "temporarily_unavailable")]
    with pytest.raises(TokenRequestError) as info:
        client.get_token(AUD)
    assert info.value.status_code == 503 and info.value.transient


@pytest.mark.anyio
async def test_async_refresh_ahead_one_caller_refreshes_others_keep_the_valid_token(clock: FakeClock) -> None:
    release = asyncio.Event()
    endpoint = FakeTokenEndpoint(expires_in=100)

    class Gated(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if endpoint.count >= 1:
                await release.wait()
            return endpoint(request)

    client = AsyncTokenClient(
        TOKEN_URL, client_id="svc", client_secret=SECRET, transport=Gated(), clock=clock
    )
    first = await client.get_token(AUD)
    clock.advance(95)  # inside the 10 s refresh margin
    refresher = asyncio.create_task(client.get_token(AUD))
    await asyncio.sleep(0)
    others = await asyncio.gather(*(client.get_token(AUD) for _ in range(50)))
    assert all(t is first for t in others)  # nobody waited for the refresh
    release.set()
    second = await refresher
    assert second.token == "tok-2" and endpoint.count == 2
    assert await client.get_token(AUD) is second
    await client.aclose()


# -- single flight --------------------------------------------------------------------------------
def test_sync_single_flight_1000_threads_one_request(clock: FakeClock) -> None:
    callers = 1000
    client: TokenClient | None = None

    def wait_for_everyone() -> None:
        # Holds the one request until every other caller has joined it: no caller can have been
        # served by the cache instead.
        deadline = time.monotonic() + 60
        while client is not None and client.stats.joined < callers - 1:
            assert time.monotonic() < deadline, f"only {client.stats.joined} callers joined"
            time.sleep(0.005)

    endpoint = FakeTokenEndpoint(before=wait_for_everyone)
    client, _ = sync_client(endpoint, clock)
    results: list[Any] = [None] * callers
    start = threading.Barrier(callers)

    def call(i: int) -> None:
        start.wait()
        results[i] = client.get_token(AUD, ["orders:read"])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert endpoint.count == 1
    assert client.stats.joined == callers - 1
    assert {r.token for r in results} == {"tok-1"}


def test_sync_single_flight_shares_the_failure(clock: FakeClock) -> None:
    gate = threading.Event()
    endpoint = FakeTokenEndpoint(before=lambda: gate.wait(30), script=[oauth_error(401, "invalid_client")])
    client, _ = sync_client(endpoint, clock)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.get_token(AUD)
        except TokenRequestError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while client.stats.joined < 19 and time.monotonic() < deadline:
        time.sleep(0.005)
    gate.set()
    for t in threads:
        t.join(timeout=30)
    assert endpoint.count == 1 and len(errors) == 20
    assert {e.error for e in errors} == {"invalid_client"}  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_async_cancelled_caller_does_not_cancel_the_shared_request(clock: FakeClock) -> None:
    release = asyncio.Event()
    endpoint = FakeTokenEndpoint()

    class Gated(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await release.wait()
            return endpoint(request)

    client = AsyncTokenClient(
        TOKEN_URL, client_id="svc", client_secret=SECRET, transport=Gated(), clock=clock
    )
    first = asyncio.create_task(client.get_token(AUD))
    second = asyncio.create_task(client.get_token(AUD))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    token = await second
    assert token.token == "tok-1" and endpoint.count == 1
    with pytest.raises(asyncio.CancelledError):
        await first


# -- retries --------------------------------------------------------------------------------------
def test_503_and_network_errors_are_retried_with_exponential_backoff(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint(
        script=[
            oauth_error(503, "temporarily_unavailable"),
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
        ]
    )
    client, sleeps = sync_client(
        endpoint, clock, rng=lambda: 1.0, retry=RetryPolicy(attempts=5, base_delay=0.5)
    )
    assert client.get_token(AUD).token == "tok-1"
    assert endpoint.count == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_jitter_spreads_the_waits(clock: FakeClock) -> None:
    draws = iter([0.25, 0.5])
    endpoint = FakeTokenEndpoint(script=[oauth_error(502, "x"), oauth_error(500, "server_error")])
    client, sleeps = sync_client(endpoint, clock, rng=lambda: next(draws), retry=RetryPolicy(base_delay=1))
    client.get_token(AUD)
    assert sleeps == [0.25, 1.0]


def test_429_waits_what_retry_after_says(clock: FakeClock) -> None:
    when = email.utils.formatdate(clock.now() + 10, usegmt=True)
    endpoint = FakeTokenEndpoint(
        script=[
            oauth_error(429, "slow_down", **{"Retry-After": "3"}),
            oauth_error(503, "temporarily_unavailable", **{"Retry-After": when}),
        ]
    )
    client, sleeps = sync_client(endpoint, clock, rng=lambda: 0.0)
    assert client.get_token(AUD).token == "tok-1"
    assert sleeps[0] == 3
    assert 6 <= sleeps[1] <= 7  # an HTTP date (to the second), 3 s of it already waited


def test_a_wait_past_the_deadline_is_not_started(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint(script=[oauth_error(429, "slow_down", **{"Retry-After": "120"})])
    client, sleeps = sync_client(endpoint, clock, retry=RetryPolicy(deadline=30))
    with pytest.raises(TokenRequestError) as info:
        client.get_token(AUD)
    assert sleeps == [] and endpoint.count == 1
    assert info.value.error == "slow_down" and info.value.status_code == 429
    assert info.value.retry_after == 120


def test_retries_stop_at_the_deadline(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint(script=[httpx.ConnectError("refused")] * 100)
    client, sleeps = sync_client(
        endpoint,
        clock,
        rng=lambda: 1.0,
        retry=RetryPolicy(attempts=100, base_delay=1, max_delay=4, deadline=10),
    )
    with pytest.raises(TokenEndpointUnreachable) as info:
        client.get_token(AUD)
    assert sum(sleeps) < 10
    assert sleeps == [1, 2, 4]  # the next 4 s wait would end past the 10 s deadline
    assert info.value.error == "temporarily_unavailable"
    assert "ConnectError" in str(info.value)


def test_attempts_are_bounded(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint(script=[oauth_error(503, "temporarily_unavailable")] * 10)
    client, sleeps = sync_client(endpoint, clock, retry=RetryPolicy(attempts=3))
    with pytest.raises(TokenRequestError) as info:
        client.get_token(AUD)
    assert endpoint.count == 3 and len(sleeps) == 2
    assert info.value.error == "temporarily_unavailable"


@pytest.mark.anyio
async def test_async_client_retries_with_the_injected_sleep(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint(
        script=[oauth_error(429, "slow_down", **{"Retry-After": "2"}), httpx.ConnectError("x")]
    )
    client, sleeps = async_client(endpoint, clock, rng=lambda: 1.0)
    token = await client.get_token(AUD, ["a"])
    assert token.token == "tok-1" and token.scopes == ("a",)
    assert sleeps == [2, 0.4]
    await client.aclose()


# -- typed errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "invalid_scope"),
        (400, "invalid_target"),
        (401, "invalid_client"),
        (400, "unsupported_grant_type"),
    ],
)
def test_4xx_is_a_typed_error_and_not_retried(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, status: int, error: str
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = FakeTokenEndpoint(script=[oauth_error(status, error, "you may not")])
    client, sleeps = sync_client(endpoint, clock)
    with pytest.raises(TokenRequestError) as info:
        client.get_token(AUD)
    exc = info.value
    assert isinstance(exc, TokenClientError) and isinstance(exc, S2SError)
    assert (exc.error, exc.status_code, exc.transient) == (error, status, False)
    assert "you may not" in exc.description
    assert endpoint.count == 1 and sleeps == []
    assert SECRET not in str(exc) and SECRET not in repr(exc) and SECRET not in logged(caplog.records)


def test_a_server_echoing_the_secret_does_not_put_it_in_the_error(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint(script=[oauth_error(400, "invalid_request", f"bad secret {SECRET}")])
    client, _ = sync_client(endpoint, clock)
    with pytest.raises(TokenRequestError) as info:
        client.get_token(AUD)
    assert SECRET not in str(info.value) and "[redacted]" in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json={"token_type": "Bearer", "expires_in": 60}),
        httpx.Response(200, json={"access_token": "t", "token_type": "mac", "expires_in": 60}),
        httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": "60"}),
        httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": -1}),
    ],
)
def test_malformed_success_is_invalid_token_response(clock: FakeClock, reply: httpx.Response) -> None:
    client, _ = sync_client(FakeTokenEndpoint(script=[reply]), clock)
    with pytest.raises(InvalidTokenResponse):
        client.get_token(AUD)


def test_a_non_oauth_4xx_still_gets_a_code(clock: FakeClock) -> None:
    client, _ = sync_client(FakeTokenEndpoint(script=[httpx.Response(404, text="<html>nope</html>")]), clock)
    with pytest.raises(TokenRequestError) as info:
        client.get_token(AUD)
    assert info.value.error == "invalid_response" and info.value.status_code == 404


def test_request_shape_client_secret_basic(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint()
    odd = "a:b+c d/é"
    client = TokenClient(
        TOKEN_URL, client_id="svc.1", client_secret=odd, transport=httpx.MockTransport(endpoint), clock=clock
    )
    client.get_token(AUD, ["b", "a"])
    request = endpoint.requests[0]
    assert request.method == "POST" and str(request.url) == TOKEN_URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
    assert form == {
        "grant_type": "client_credentials",
        "audience": "https%3A%2F%2Forders.internal",
        "scope": "a+b",
    }
    # RFC 6749 §2.3.1: each part form-urlencoded, then Basic.
    assert request.headers["authorization"] == httpx.BasicAuth("svc.1", "a%3Ab%2Bc+d%2F%C3%A9")._auth_header
    assert odd not in request.content.decode()


def test_invalidate_drops_only_the_given_token(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint()
    client, _ = sync_client(endpoint, clock)
    old = client.get_token(AUD)
    assert client.invalidate(AUD)
    new = client.get_token(AUD)
    assert not client.invalidate(AUD, token=old)  # a newer token is kept
    assert client.get_token(AUD) is new and endpoint.count == 2


def test_bad_arguments(clock: FakeClock) -> None:
    from s2s.errors import ConfigError

    with pytest.raises(ConfigError):
        TokenClient(TOKEN_URL, client_id="svc", clock=clock)  # no credential
    with pytest.raises(ConfigError):
        TokenClient(client_id="svc", client_secret=SECRET)  # no endpoint, no issuer
    with pytest.raises(ConfigError):
        TokenClient("ftp://x/token", client_id="svc", client_secret=SECRET)
    client, _ = sync_client(FakeTokenEndpoint(), clock)
    with pytest.raises(ConfigError):
        client.get_token("")
    with pytest.raises(ConfigError):
        client.get_token(AUD, ['a"b'])
    with pytest.raises(ConfigError):  # `$` would let the newline through; the pattern ends in \Z
        client.get_token(AUD, ["orders:read\n"])


def test_an_error_code_with_a_trailing_newline_is_not_taken_as_is(clock: FakeClock) -> None:
    reply = httpx.Response(400, json={"error": "invalid_scope\n", "error_description": "no"})
    client, _ = sync_client(FakeTokenEndpoint(script=[reply]), clock)
    with pytest.raises(TokenRequestError) as info:
        client.get_token(AUD)
    assert info.value.error == "invalid_response"


@pytest.mark.parametrize("value", [b"\xb2", b"\xd9\xa3"])  # "²" and an Arabic-Indic 3: isdigit(), not ASCII
def test_a_non_ascii_retry_after_is_ignored_not_a_crash(clock: FakeClock, value: bytes) -> None:
    reply = httpx.Response(429, headers=[(b"Retry-After", value)], json={"error": "slow_down"})
    endpoint = FakeTokenEndpoint(script=[reply])
    client, sleeps = sync_client(endpoint, clock, rng=lambda: 1.0, retry=RetryPolicy(base_delay=0.5))
    assert client.get_token(AUD).token == "tok-1"
    assert sleeps == [0.5]  # the backoff, as if no Retry-After had been sent


def test_a_retry_after_date_without_a_zone_is_gmt(clock: FakeClock) -> None:
    when = email.utils.formatdate(clock.now() + 10, usegmt=True).replace("GMT", "-0000")
    endpoint = FakeTokenEndpoint(
        script=[oauth_error(503, "temporarily_unavailable", **{"Retry-After": when})]
    )
    client, sleeps = sync_client(endpoint, clock, rng=lambda: 0.0)
    # A naive datetime's timestamp() uses the local zone: run far from UTC so a mix-up shows.
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Etc/GMT+10"
    time.tzset()
    try:
        client.get_token(AUD)
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
    assert 9 <= sleeps[0] <= 10


def test_an_echoed_secret_cut_by_the_length_cap_leaves_no_prefix(clock: FakeClock) -> None:
    description = "x" * 280 + SECRET  # the 300-character cap falls inside the secret
    endpoint = FakeTokenEndpoint(script=[oauth_error(400, "invalid_request", description)])
    client, _ = sync_client(endpoint, clock)
    with pytest.raises(TokenRequestError) as info:
        client.get_token(AUD)
    assert SECRET[:12] not in str(info.value) and "[redacted]" in str(info.value)


def test_a_secret_echoed_as_the_error_code_is_not_used(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = FakeTokenEndpoint(script=[oauth_error(400, SECRET, "no")])
    client, _ = sync_client(endpoint, clock)
    with pytest.raises(TokenRequestError) as info:
        client.get_token(AUD)
    assert info.value.error == "invalid_response"
    assert SECRET not in str(info.value) and SECRET not in logged(caplog.records)
