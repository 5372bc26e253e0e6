"""Assertion sources: a file re-read when it changes, an environment variable, a callable."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from s2s.client import (
    AssertionExpired,
    AssertionUnavailable,
    CallableAssertionSource,
    ClientAssertion,
    EnvAssertionSource,
    FileAssertionSource,
)
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from tests.client.assertion_support import ProjectedVolume, platform_token, write_atomically

NOW = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def test_an_atomic_rename_is_picked_up_at_the_next_get(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    first, second = platform_token(NOW + 3600), platform_token(NOW + 3600)
    write_atomically(path, first + "\n")
    source = FileAssertionSource(path, clock=clock)
    assert source.get() == first
    assert source.get() == first and source.reads == 1  # unchanged: one stat, no read
    write_atomically(path, second)
    assert source.get() == second


def test_the_kubelet_symlink_swap_is_picked_up_at_the_next_get(tmp_path: Path, clock: FakeClock) -> None:
    volume = ProjectedVolume(tmp_path / "kube-api-access")
    tokens = [platform_token(NOW + 3600 + i) for i in range(5)]
    volume.write(tokens[0])
    source = FileAssertionSource(volume.path, clock=clock)
    for token in tokens:
        volume.write(token)
        assert volume.path.is_symlink() and (volume.root / "..data").is_symlink()
        assert source.get() == token
    # Every old timestamped directory is gone: the source never held a file open.
    assert len([p for p in volume.root.iterdir() if p.name.startswith("..2026")]) == 1


def test_a_token_near_its_expiry_makes_the_source_read_again(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    old, new = platform_token(NOW + 600), platform_token(NOW + 4200)
    path.write_text(old)
    source = FileAssertionSource(path, clock=clock, refresh_margin=60)
    assert source.get() == old
    # Rewritten in place, keeping size and mtime: the identity looks the same...
    st = path.stat()
    with path.open("r+") as f:
        f.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    clock.advance(300)
    assert source.get() == old  # ...so while the cached token is far from expiry it is kept
    clock.advance(250)  # 50 s left: inside the margin, the file is read again
    assert source.get() == new


def test_an_expired_file_is_a_typed_error_naming_the_file_and_expiry(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "token"
    token = platform_token(NOW - 90)
    path.write_text(token)
    source = FileAssertionSource(path, clock=clock)
    with pytest.raises(AssertionExpired) as info:
        source.get()
    message = str(info.value)
    assert str(path) in message and "2027-01-15T07:58:30Z" in message and "90s ago" in message
    assert info.value.error == "assertion_expired" and info.value.expired_at == NOW - 90
    assert isinstance(info.value, AssertionUnavailable)
    for part in token.split("."):
        assert part not in message and part not in caplog.text and part not in repr(info.value)


def test_the_cached_token_is_never_served_after_its_expiry(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    path.write_text(platform_token(NOW + 100))
    source = FileAssertionSource(path, clock=clock, refresh_margin=0)
    source.get()
    clock.advance(100)  # exp == now: expired, and the file was not refreshed
    with pytest.raises(AssertionExpired, match=str(path)):
        source.get()


def test_a_missing_or_empty_file(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    with pytest.raises(AssertionUnavailable, match=rf"cannot read the assertion file {path}: No such file"):
        FileAssertionSource(path, clock=clock).get()
    path.write_text("\n")
    with pytest.raises(AssertionUnavailable, match="is empty"):
        FileAssertionSource(path, clock=clock).get()
    path.write_text("two tokens\n")
    with pytest.raises(AssertionUnavailable, match="does not hold one token"):
        FileAssertionSource(path, clock=clock).get()


def test_a_writer_caught_mid_write_does_not_fail_a_valid_cached_token(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "token"
    token, newer = platform_token(NOW + 3600), platform_token(NOW + 7200)
    path.write_text(token)
    source = FileAssertionSource(path, clock=clock)
    assert source.get() == token
    path.write_text("")  # truncated by a writer that is not atomic
    assert source.get() == token
    path.unlink()  # deleted before being created again
    assert source.get() == token
    path.write_text(newer)
    assert source.get() == newer
    path.unlink()
    clock.advance(7200)
    with pytest.raises(AssertionExpired, match="No such file"):
        source.get()


def test_an_opaque_token_has_no_known_expiry_and_is_passed_on(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    path.write_text("opaque-token-value")
    assert FileAssertionSource(path, clock=clock).get() == "opaque-token-value"


def test_env_source(clock: FakeClock) -> None:
    token = platform_token(NOW + 60)
    env = {"ACTIONS_ID_TOKEN": token}
    source = EnvAssertionSource("ACTIONS_ID_TOKEN", environ=env, clock=clock)
    assert source.get() == token
    assert asyncio.run(source.aget()) == token
    env["ACTIONS_ID_TOKEN"] = platform_token(NOW - 1)
    expired = "the environment variable ACTIONS_ID_TOKEN has an assertion that expired at"
    with pytest.raises(AssertionExpired, match=expired):
        source.get()
    with pytest.raises(AssertionUnavailable, match="the environment variable NOPE is not set"):
        EnvAssertionSource("NOPE", environ=env, clock=clock).get()


def test_callable_source_sync_and_async(clock: FakeClock) -> None:
    tokens = iter([platform_token(NOW + 60 + i) for i in range(10)])

    def fetch() -> str:
        return next(tokens)

    async def afetch() -> bytes:
        await asyncio.sleep(0)
        return next(tokens).encode()

    sync, coro = CallableAssertionSource(fetch, clock=clock), CallableAssertionSource(afetch, clock=clock)
    a, b = sync.get(), sync.get()
    assert a != b  # called at every get: a fresh one each time
    assert asyncio.run(sync.aget()) not in (a, b)
    # An async callable: awaited by aget, run in its own loop by get (no loop in this thread).
    assert asyncio.run(coro.aget()).count(".") == 2
    assert coro.get().count(".") == 2

    async def get_inside_a_loop() -> None:
        with pytest.raises(AssertionUnavailable, match="use AsyncTokenClient"):
            coro.get()

    asyncio.run(get_inside_a_loop())


def test_callable_failures_are_typed_and_quote_nothing(clock: FakeClock) -> None:
    token = platform_token(NOW + 60)

    def broken() -> str:
        raise RuntimeError(f"could not refresh {token}")

    with pytest.raises(AssertionUnavailable) as info:
        CallableAssertionSource(broken, clock=clock).get()
    assert str(info.value).endswith("<locals>.broken failed: RuntimeError")
    assert token not in str(info.value)
    with pytest.raises(AssertionUnavailable, match="gave a int"):
        CallableAssertionSource(lambda: 5, name="five", clock=clock).get()
    expired = CallableAssertionSource(lambda: platform_token(NOW - 5), name="ci", clock=clock)
    with pytest.raises(AssertionExpired, match="the assertion callable ci has an assertion that expired"):
        expired.get()


def test_client_assertion_fills_the_rfc7523_form(tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = platform_token(time.time() + 600)
    path.write_text(token)
    credential = ClientAssertion.from_file(path)
    form: dict[str, str] = {}
    headers: dict[str, str] = {}
    sensitive = credential.apply("orders", "https://issuer.test/oauth2/token", time.time(), form, headers)
    assert form == {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": token,
        "client_id": "orders",
    }
    assert headers == {} and sensitive == (token,)
    assert token not in repr(credential) and str(path) in repr(credential)
    with pytest.raises(ConfigError, match="assertion source"):
        ClientAssertion("not a source")  # type: ignore[arg-type]
