"""A failing assertion callable: the typed error keeps nothing of the user's exception.

Its message (or the locals of its frames) may hold the token: neither ``__cause__`` nor
``__context__`` may lead to it, so no ``log.exception`` or traceback printer shows it.
"""

from __future__ import annotations

import asyncio
import logging
import traceback

import pytest

from s2s.client import AssertionUnavailable, CallableAssertionSource, SpiffeAssertionSource
from s2s.clock import FakeClock

CANARY = "eyJhbGciOiJSUzI1NiJ9.canary-token-body.canary-signature"


def broken() -> str:
    token = CANARY  # a local a traceback printer with locals would show
    raise RuntimeError(f"refresh failed for {token}")


async def abroken() -> str:
    await asyncio.sleep(0)
    raise RuntimeError(f"refresh failed for {CANARY}")


def check(error: AssertionUnavailable, caplog: pytest.LogCaptureFixture) -> None:
    assert error.__cause__ is None and error.__context__ is None
    assert str(error).endswith("failed: RuntimeError")
    printed = "".join(traceback.format_exception(error))
    printed += "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    logging.getLogger("app").error("no token", exc_info=error)
    assert CANARY not in printed and "canary" not in printed
    assert "canary" not in caplog.text and "RuntimeError" in printed


@pytest.mark.parametrize("fn", [broken, abroken])
def test_get_and_aget_keep_no_trace_of_the_users_exception(
    fn: object, caplog: pytest.LogCaptureFixture
) -> None:
    source = CallableAssertionSource(fn, clock=FakeClock(1_800_000_000))  # type: ignore[arg-type]
    with pytest.raises(AssertionUnavailable) as info:
        source.get()
    check(info.value, caplog)
    with pytest.raises(AssertionUnavailable) as info:
        asyncio.run(source.aget())
    check(info.value, caplog)


class FailingWorkloadApi:
    """A borrowed py-spiffe client whose fetch fails with a message holding the token."""

    def fetch_jwt_svid(self, audience: set[str], subject: object, timeout: float | None = None) -> object:
        raise RuntimeError(f"agent answered {CANARY}")

    def close(self) -> None:
        return None


def test_the_spiffe_source_keeps_no_trace_either(caplog: pytest.LogCaptureFixture) -> None:
    source = SpiffeAssertionSource("https://issuer.internal", client=FailingWorkloadApi())
    with pytest.raises(AssertionUnavailable) as info:
        source.get()
    error = info.value
    assert error.__cause__ is None and error.__context__ is None
    assert str(error).endswith("gave no JWT-SVID (RuntimeError)")
    assert "canary" not in "".join(traceback.format_exception(error))
