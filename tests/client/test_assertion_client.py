"""TokenClient / AsyncTokenClient with a ClientAssertion: every acquisition sends the source's
current, unexpired assertion, however and however often the platform rewrites it."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from s2s.client import (
    AssertionExpired,
    AssertionSource,
    AsyncTokenClient,
    CallableAssertionSource,
    ClientAssertion,
    FileAssertionSource,
    RefreshPolicy,
    TokenClient,
    TokenClientSettings,
)
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from tests.client.assertion_support import (
    JWT_BEARER,
    ProjectedVolume,
    Rewriter,
    Rotation,
    TokenServer,
    claims_of,
    platform_token,
    write_atomically,
)
from tests.client.helpers import TOKEN_URL, FakeTokenEndpoint, logged

AUDIENCE = "https://orders.internal"
NOW = 1_800_000_000.0


def posted(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def make_client(path: Path, clock: FakeClock, endpoint: FakeTokenEndpoint, **options: object) -> TokenClient:
    return TokenClient(
        TOKEN_URL,
        client_id="orders",
        client_assertion=FileAssertionSource(path, clock=clock),
        transport=httpx.MockTransport(endpoint),
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("layout", ["rename", "kubelet"])
def test_a_rewritten_file_is_sent_at_the_next_acquisition(tmp_path: Path, layout: str) -> None:
    clock = FakeClock(NOW)
    if layout == "kubelet":
        volume = ProjectedVolume(tmp_path / "serviceaccount")
        path, write = volume.path, volume.write
    else:
        path = tmp_path / "token"

        def write(text: str) -> None:
            write_atomically(path, text)

    endpoint = FakeTokenEndpoint(expires_in=600)
    first, second = platform_token(NOW + 3600), platform_token(NOW + 3600)
    write(first)
    client = make_client(path, clock, endpoint)
    client.get_token(AUDIENCE)
    form = posted(endpoint.requests[0])
    assert form["client_assertion"] == first and form["client_id"] == "orders"
    assert form["client_assertion_type"] == JWT_BEARER and "authorization" not in endpoint.requests[0].headers
    write(second)
    client.get_token(AUDIENCE)  # cached access token: nothing sent
    assert endpoint.count == 1
    clock.advance(590)  # inside the refresh window: the next acquisition
    client.get_token(AUDIENCE)
    assert posted(endpoint.requests[1])["client_assertion"] == second


def test_an_expired_file_fails_the_acquisition_with_a_typed_error_and_no_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock(NOW)
    path = tmp_path / "token"
    token = platform_token(NOW - 1)
    path.write_text(token)
    endpoint = FakeTokenEndpoint()
    client = make_client(path, clock, endpoint)
    with pytest.raises(AssertionExpired) as info:
        client.get_token(AUDIENCE)
    assert str(path) in str(info.value) and "expired at 2027-01-15T07:59:59Z" in str(info.value)
    assert endpoint.count == 0
    assert token not in logged(caplog.records) and token.split(".")[1] not in caplog.text


def test_a_valid_access_token_is_kept_when_the_file_expired_during_a_refresh(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    path = tmp_path / "token"
    path.write_text(platform_token(NOW + 100))
    endpoint = FakeTokenEndpoint(expires_in=600)
    client = make_client(path, clock, endpoint, refresh=RefreshPolicy(min_remaining=60, fraction=0))
    token = client.get_token(AUDIENCE)
    clock.advance(560)  # refresh window; the assertion file was not refreshed and has expired
    assert client.get_token(AUDIENCE) == token  # the refresh failed, the cached token still serves
    clock.advance(40)
    with pytest.raises(AssertionExpired):
        client.get_token(AUDIENCE)
    assert endpoint.count == 1


def test_a_simulated_day_of_hourly_rotation_has_no_failure(tmp_path: Path) -> None:
    """The kubelet rewrites the file every hour with a 1 h token; the service asks for a token
    every 17 s (a cache hit mostly), and the issuer checks every assertion it receives."""
    clock = FakeClock(NOW)
    volume = ProjectedVolume(tmp_path / "tokens")
    written: list[str] = []
    refused: list[str] = []

    def rotate() -> None:
        token = platform_token(clock.now() + 3600)
        volume.write(token)
        written.append(token)

    def issuer(request: httpx.Request) -> httpx.Response:
        assertion = posted(request)["client_assertion"]
        if assertion != written[-1]:
            refused.append("not the current file content")
        elif claims_of(assertion)["exp"] <= clock.now():
            refused.append("expired")
        return endpoint.token(request)

    endpoint = FakeTokenEndpoint(expires_in=900, script=[])
    endpoint.script.extend([issuer] * 10_000)
    client = make_client(volume.path, clock, endpoint)
    rotate()
    failures = acquisitions = 0
    next_rotation = clock.now() + 3600
    day_end = clock.now() + 86400
    while clock.now() < day_end:
        if clock.now() >= next_rotation:
            rotate()
            next_rotation += 3600
        try:
            client.get_token(AUDIENCE)
        except Exception:
            failures += 1
        acquisitions += 1
        clock.advance(17)
    assert failures == 0 and refused == []
    assert len(written) == 24 and acquisitions > 5000
    sent = {posted(r)["client_assertion"] for r in endpoint.requests}
    assert sent == set(written)  # every rotated token was used, and only those
    assert endpoint.count >= 24 * 4  # a fresh access token about every 15 minutes


# -- under load, against a real token endpoint ----------------------------------------------------
@pytest.fixture
def rotating(tmp_path: Path) -> Iterator[tuple[ProjectedVolume, Rotation, TokenServer, Rewriter, list[int]]]:
    volume = ProjectedVolume(tmp_path / "projected")
    rotation = Rotation()
    # The generation that was current when the acquisition in progress began (one acquirer).
    started: list[int] = [0]

    def check(assertion: str) -> str | None:
        generation = rotation.index(assertion)
        if generation is None:
            return "not a token the platform wrote"
        if generation < started[0]:
            return f"stale: generation {generation}, the file held {started[0]} when the acquisition began"
        if claims_of(assertion)["exp"] <= time.time():
            return "expired"
        return None

    server = TokenServer(check, expires_in=300)
    writer = Rewriter(volume.write, rotation, interval=lambda: random.uniform(1.0, 2.0), lifetime=5.0)
    writer.rewrite()
    writer.start()
    try:
        yield volume, rotation, server, writer, started
    finally:
        writer.stop.set()
        writer.join(10)
        server.close()


ACQUISITIONS = 400
REWRITES = 2


def _done(acquisitions: int, rewrites: int) -> bool:
    """The load tests end on the work they must see: enough acquisitions spanning rewrites of the
    file (a fast machine would otherwise finish between two rewrites), not on a clock."""
    return acquisitions >= ACQUISITIONS and rewrites >= REWRITES


def test_a_file_rewritten_every_second_or_two_under_load_fails_no_acquisition(
    rotating: tuple[ProjectedVolume, Rotation, TokenServer, Rewriter, list[int]],
) -> None:
    volume, rotation, server, _, started = rotating
    failures = 0
    credential = ClientAssertion.from_file(volume.path)
    acquisitions, first, ceiling = 0, rotation.generation, time.monotonic() + 120
    with TokenClient(server.url, client_id="orders", client_assertion=credential) as client:
        while not _done(acquisitions, rotation.generation - first) and time.monotonic() < ceiling:
            started[0] = rotation.generation
            client.clear()  # every iteration is a real acquisition
            try:
                client.get_token(AUDIENCE)
            except Exception:
                failures += 1
            acquisitions += 1
            time.sleep(0.01)  # a service's pace; the loop ends on the work done, not on time
    assert failures == 0 and server.refusals == []
    assert len(server.accepted) == acquisitions >= ACQUISITIONS
    # The run spanned rotations: several generations were sent, each the current one in turn.
    assert len({rotation.index(a) for a in server.accepted}) >= 2


def test_the_async_client_under_the_same_load_fails_no_acquisition(
    rotating: tuple[ProjectedVolume, Rotation, TokenServer, Rewriter, list[int]],
) -> None:
    volume, rotation, server, _, started = rotating

    async def run() -> tuple[int, int]:
        failures = acquisitions = 0
        first, ceiling = rotation.generation, time.monotonic() + 120
        source = FileAssertionSource(volume.path)
        async with AsyncTokenClient(server.url, client_id="orders", client_assertion=source) as client:
            while not _done(acquisitions, rotation.generation - first) and time.monotonic() < ceiling:
                started[0] = rotation.generation
                client.clear()
                try:
                    await client.get_token(AUDIENCE)
                except Exception:
                    failures += 1
                acquisitions += 1
                await asyncio.sleep(0.01)
        return failures, acquisitions

    failures, acquisitions = asyncio.run(run())
    assert failures == 0 and server.refusals == []
    assert len(server.accepted) == acquisitions >= ACQUISITIONS
    assert len({rotation.index(a) for a in server.accepted}) >= 2


def test_concurrent_callers_share_the_source_safely(
    rotating: tuple[ProjectedVolume, Rotation, TokenServer, Rewriter, list[int]],
) -> None:
    volume, _, server, _, _ = rotating
    source = FileAssertionSource(volume.path)
    errors: list[BaseException] = []
    with TokenClient(server.url, client_id="orders", client_assertion=source) as client:

        def worker(audience: str) -> None:
            for _ in range(50):
                try:
                    client.invalidate(audience)
                    client.get_token(audience)
                except Exception as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=worker, args=(f"{AUDIENCE}/{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert errors == [] and server.refusals == [] and len(server.accepted) == 200


# -- async callables and settings -------------------------------------------------------------------
def test_the_async_client_awaits_an_async_callable() -> None:
    clock = FakeClock(NOW)
    calls: list[str] = []

    async def github_oidc_token() -> str:
        await asyncio.sleep(0)
        calls.append(platform_token(NOW + 300, sub="repo:acme/orders:ref:refs/heads/main"))
        return calls[-1]

    endpoint = FakeTokenEndpoint(expires_in=60)

    async def run() -> None:
        async with AsyncTokenClient(
            TOKEN_URL,
            client_id="orders",
            client_assertion=CallableAssertionSource(github_oidc_token, clock=clock),
            transport=httpx.MockTransport(endpoint),
            clock=clock,
        ) as client:
            await client.get_token(AUDIENCE)
            client.clear()
            await client.get_token(AUDIENCE)

    asyncio.run(run())
    assert [posted(r)["client_assertion"] for r in endpoint.requests] == calls and len(calls) == 2


def test_from_env_with_an_assertion_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    token = platform_token(time.time() + 600)
    path.write_text(token)
    monkeypatch.setenv("S2S_CLIENT_ID", "orders")
    monkeypatch.setenv("S2S_TOKEN_ENDPOINT", TOKEN_URL)
    monkeypatch.setenv("S2S_CLIENT_ASSERTION_FILE", str(path))
    for name in ("S2S_CLIENT_SECRET", "S2S_CLIENT_PRIVATE_KEY", "S2S_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    endpoint = FakeTokenEndpoint()
    client = TokenClient.from_env(transport=httpx.MockTransport(endpoint))
    client.get_token(AUDIENCE)
    assert posted(endpoint.requests[0])["client_assertion"] == token
    assert "private_key_jwt" in repr(client) and token not in repr(client)
    settings = TokenClientSettings.from_env()
    assert settings.assertion_file == str(path) and str(path) in repr(settings)


def test_exactly_one_credential_and_the_error_names_the_alternatives(tmp_path: Path) -> None:
    base = {"S2S_CLIENT_ID": "orders", "S2S_ISSUER": "https://issuer.example"}
    with pytest.raises(ConfigError) as info:
        TokenClientSettings.from_env(environ=base)
    assert str(info.value) == (
        "missing setting: S2S_CLIENT_SECRET or S2S_CLIENT_PRIVATE_KEY or S2S_CLIENT_ASSERTION_FILE"
    )
    both = {**base, "S2S_CLIENT_SECRET": "s3cr3t-value", "S2S_CLIENT_ASSERTION_FILE": str(tmp_path / "t")}
    with pytest.raises(ConfigError) as info:
        TokenClientSettings.from_env(environ=both)
    assert str(info.value) == (
        "S2S_CLIENT_SECRET and S2S_CLIENT_ASSERTION_FILE are alternatives: give exactly one of "
        "S2S_CLIENT_SECRET / S2S_CLIENT_PRIVATE_KEY / S2S_CLIENT_ASSERTION_FILE"
    )
    assert "s3cr3t-value" not in str(info.value)
    with pytest.raises(ConfigError, match="exactly one of client_secret, private_key or client_assertion"):
        TokenClient(
            TOKEN_URL, client_id="x", client_secret="s", client_assertion=FileAssertionSource(tmp_path / "t")
        )


def test_a_source_of_your_own_needs_only_get() -> None:
    """The protocol is one method; the async client runs a blocking get() off the event loop."""
    threads: list[str] = []

    class Vault:
        def get(self) -> str:
            threads.append(threading.current_thread().name)
            return platform_token(time.time() + 300)

    source = Vault()
    assert isinstance(source, AssertionSource)
    endpoint = FakeTokenEndpoint()

    async def run() -> None:
        async with AsyncTokenClient(
            TOKEN_URL, client_id="orders", client_assertion=source, transport=httpx.MockTransport(endpoint)
        ) as client:
            await client.get_token(AUDIENCE)

    asyncio.run(run())
    assert endpoint.count == 1 and threads and threads[0] != threading.main_thread().name
