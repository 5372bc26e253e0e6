"""Whatever a platform token holds, an assertion source answers with the token or a typed error.

The client reads ``exp`` without verifying anything (the issuer verifies): a huge or negative
``exp``, a deeply nested or non-JSON payload must give an unknown expiry or an
:class:`~s2s.client.AssertionUnavailable` naming the source, never an ``OSError``,
``OverflowError`` or ``RecursionError`` from the parser or the date formatting.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from s2s.client import AssertionExpired, FileAssertionSource
from s2s.client._assertions import assertion_expiry
from s2s.clock import FakeClock
from s2s.jose import b64url_encode

NOW = 1_800_000_000.0


def token_with(payload: bytes) -> str:
    return ".".join(
        [b64url_encode(b'{"alg":"RS256"}'), b64url_encode(payload), b64url_encode(b"signature-bytes-here")]
    )


HUGE = [b'{"exp": 1e18}', b'{"exp": 1e300}', b'{"exp": ' + b"9" * 400 + b"}", b'{"exp": 253402300800}']
NEGATIVE = [b'{"exp": -1e18}', b'{"exp": -1e300}', b'{"exp": -62135596801}']
DEEP = b"[" * 20000 + b"]" * 20000  # deeper than json's recursion limit
# No finite number of seconds, or no claims at all: an unknown expiry (the issuer decides).
OPAQUE = [
    DEEP,
    b'{"exp": -' + b"9" * 400 + b"}",
    b'{"exp": -1e400}',
    b'{"exp": ' + DEEP + b"}",
    b"\xff\xfe not json",
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="s2s.client")  # the debug line formats the expiry


def in_file(tmp_path: Path, payload: bytes) -> tuple[Path, str]:
    path, token = tmp_path / "token", token_with(payload)
    assert len(token) < 64 * 1024  # fits in an assertion file: the parser, not the size check, is tested
    path.write_text(token)
    return path, token


@pytest.mark.parametrize("payload", HUGE + NEGATIVE + OPAQUE)
def test_assertion_expiry_is_total(payload: bytes) -> None:
    exp = assertion_expiry(token_with(payload))
    assert exp is None or isinstance(exp, float)


@pytest.mark.parametrize("payload", HUGE)
def test_a_huge_exp_is_far_future_and_the_token_is_passed_on(
    payload: bytes, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path, token = in_file(tmp_path, payload)
    assert FileAssertionSource(path, clock=clock).get() == token
    assert all(part not in caplog.text for part in token.split("."))


@pytest.mark.parametrize("payload", NEGATIVE)
def test_a_negative_exp_is_expired_naming_the_file_only(
    payload: bytes, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path, token = in_file(tmp_path, payload)
    with pytest.raises(AssertionExpired) as info:
        FileAssertionSource(path, clock=clock).get()
    message = str(info.value)
    assert message.startswith(f"the assertion file {path} has an assertion that expired at ")
    assert all(part not in message and part not in caplog.text for part in token.split("."))


@pytest.mark.parametrize("payload", OPAQUE)
def test_a_nested_or_non_json_payload_has_no_known_expiry(
    payload: bytes, tmp_path: Path, clock: FakeClock
) -> None:
    path, token = in_file(tmp_path, payload)
    assert FileAssertionSource(path, clock=clock).get() == token
