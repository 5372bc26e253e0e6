"""An issuer restart never reaches callers (issue 10 item 5): the default retry policy rides out a
few seconds of refused connections, and a caller holding a valid token never fails, nor waits on
retries, because a refresh failed. FakeClock + httpx MockTransport, no real time."""

from __future__ import annotations

import random

import httpx
import pytest

from s2s.client import RetryPolicy, TokenEndpointUnreachable
from s2s.clock import FakeClock
from tests.client.helpers import FakeTokenEndpoint
from tests.client.test_policies import AUD, async_client, sync_client


class Restarting(FakeTokenEndpoint):
    """Refuses connections until ``up_at`` (fake time): an issuer being restarted."""

    def __init__(self, clock: FakeClock, down_for: float, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.clock = clock
        self.up_at = clock.monotonic() + down_for

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.clock.monotonic() < self.up_at:
            self.requests.append(request)
            raise httpx.ConnectError("connection refused")
        return super().__call__(request)


@pytest.mark.parametrize("seed", range(20))
def test_the_default_policy_rides_out_a_three_second_restart(clock: FakeClock, seed: int) -> None:
    endpoint = Restarting(clock, down_for=3.0)
    rng = random.Random(seed)  # the jitter draws vary; every draw must get through
    client, sleeps = sync_client(endpoint, clock, rng=rng.random)
    assert client.get_token(AUD).token == "tok-1"
    assert sum(sleeps) >= 3.0 and max(sleeps) <= RetryPolicy().max_delay
    assert len(set(sleeps)) > 1  # jittered, growing waits


def test_a_longer_outage_still_ends_at_the_deadline(clock: FakeClock) -> None:
    endpoint = Restarting(clock, down_for=1000)
    client, sleeps = sync_client(endpoint, clock, rng=lambda: 1.0)
    with pytest.raises(TokenEndpointUnreachable):
        client.get_token(AUD)
    assert sum(sleeps) < RetryPolicy().deadline


def test_a_valid_token_is_served_while_the_issuer_restarts(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint(expires_in=300)
    client, sleeps = sync_client(endpoint, clock, rng=lambda: 1.0)
    first = client.get_token(AUD)
    clock.advance(300 - 20)  # inside the refresh margin, 20 s of validity left
    endpoint.script = [httpx.ConnectError("refused")] * 50
    for _ in range(100):  # many callers during the restart: none fails, none waits on retries
        assert client.get_token(AUD) is first
    assert sleeps == [] and len(endpoint.requests) == 2  # one refresh try, then a backoff
    clock.advance(RetryPolicy().max_delay)
    assert client.get_token(AUD) is first and len(endpoint.requests) == 3
    endpoint.script = []
    clock.advance(RetryPolicy().max_delay)
    assert client.get_token(AUD).token == "tok-2"


@pytest.mark.anyio
async def test_the_async_client_serves_its_valid_token_while_the_issuer_restarts(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint(expires_in=300)
    client, sleeps = async_client(endpoint, clock, rng=lambda: 1.0)
    first = await client.get_token(AUD)
    clock.advance(300 - 20)
    endpoint.script = [httpx.ReadTimeout("slow")] * 50
    for _ in range(20):
        assert await client.get_token(AUD) is first
    assert sleeps == [] and len(endpoint.requests) == 2
    restarting = Restarting(clock, down_for=3.0)
    other, other_sleeps = async_client(restarting, clock, rng=random.Random(7).random)
    assert (await other.get_token(AUD)).token == "tok-1"
    assert sum(other_sleeps) >= 3.0
    await client.aclose()
    await other.aclose()
