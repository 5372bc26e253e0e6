"""BearerAuth: the bearer header, and one retry with a new token after a 401."""

from __future__ import annotations

import httpx
import pytest

from s2s.client import AsyncTokenClient, BearerAuth, TokenClient
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from tests.client.helpers import SECRET, TOKEN_URL, FakeTokenEndpoint

AUD = "https://orders.internal"


class Resource:
    """Answers 401 to the first ``reject`` requests, then 200; records the bearer tokens it saw."""

    def __init__(self, reject: int) -> None:
        self.reject = reject
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.headers.get("authorization", ""))
        if len(self.seen) <= self.reject:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return httpx.Response(200, json={"body": request.content.decode()})


@pytest.mark.parametrize(("reject", "status", "tokens"), [(0, 200, 1), (1, 200, 2), (5, 401, 2)])
def test_sync_401_drops_the_token_and_retries_once(
    clock: FakeClock, reject: int, status: int, tokens: int
) -> None:
    endpoint = FakeTokenEndpoint()
    resource = Resource(reject)
    client = TokenClient(
        TOKEN_URL, client_id="svc", client_secret=SECRET, transport=httpx.MockTransport(endpoint), clock=clock
    )
    with httpx.Client(transport=httpx.MockTransport(resource), auth=BearerAuth(client, AUD, ["a"])) as http:
        response = http.post("https://orders.internal/x", content=b"payload")
    assert response.status_code == status
    assert endpoint.count == tokens
    assert resource.seen == [f"Bearer tok-{i}" for i in range(1, tokens + 1)]  # at most one retry
    if status == 200:
        assert response.json() == {"body": "payload"}  # the body was sent again


@pytest.mark.anyio
@pytest.mark.parametrize(("reject", "status", "tokens"), [(0, 200, 1), (1, 200, 2), (5, 401, 2)])
async def test_async_401_drops_the_token_and_retries_once(
    clock: FakeClock, reject: int, status: int, tokens: int
) -> None:
    endpoint = FakeTokenEndpoint()
    resource = Resource(reject)
    client = AsyncTokenClient(
        TOKEN_URL, client_id="svc", client_secret=SECRET, transport=httpx.MockTransport(endpoint), clock=clock
    )

    async def stream() -> object:
        yield b"pay"
        yield b"load"

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(resource), auth=BearerAuth(client, AUD)
    ) as http:
        response = await http.post("https://orders.internal/x", content=stream())  # type: ignore[arg-type]
    assert response.status_code == status
    assert endpoint.count == tokens
    assert resource.seen == [f"Bearer tok-{i}" for i in range(1, tokens + 1)]
    if status == 200:
        assert response.json() == {"body": "payload"}
    # the token that worked stays cached for the next call
    assert (await client.get_token(AUD)).token == f"tok-{tokens}"
    await client.aclose()


def test_a_401_does_not_drop_a_newer_token(clock: FakeClock) -> None:
    endpoint = FakeTokenEndpoint()
    client = TokenClient(
        TOKEN_URL, client_id="svc", client_secret=SECRET, transport=httpx.MockTransport(endpoint), clock=clock
    )
    stale = client.get_token(AUD)
    client.invalidate(AUD)
    fresh = client.get_token(AUD)
    assert not client.invalidate(AUD, (), stale)  # what BearerAuth does for a 401 to the old token
    assert client.get_token(AUD) is fresh


def test_the_wrong_twin_is_a_clear_error(clock: FakeClock) -> None:
    client = AsyncTokenClient(TOKEN_URL, client_id="svc", client_secret=SECRET, clock=clock)
    with (
        httpx.Client(transport=httpx.MockTransport(Resource(0)), auth=BearerAuth(client, AUD)) as http,
        pytest.raises(ConfigError),
    ):
        http.get("https://orders.internal/x")
    assert SECRET not in repr(BearerAuth(client, AUD))
