"""The HTTP client handed to MSAL: Retry-After honoured on 429 / 503, with bounded retries.

MSAL 1.39 does not surface ``Retry-After`` in its result dicts: its own throttling layer replays a
429 for the Retry-After period (on the wall clock) without asking Entra again. So the retry happens
here, below MSAL, through its public ``http_client`` parameter: the wrapper waits (``sleep`` is
injectable) and re-sends the same request; only when the retries are spent does MSAL see the 429.
The last status and Retry-After seen are kept per thread so the caller can type the error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from s2s.clock import Clock, system_clock
from s2s.http import parse_retry_after

__all__ = ["MsalHttpClient", "RetryingHttpClient"]

_RETRY_STATUSES = frozenset({429, 503})


class MsalHttpClient(Protocol):
    """All MSAL needs from an HTTP client (``requests.Session`` fits)."""

    def get(self, url: str, **kwargs: Any) -> Any: ...

    def post(self, url: str, **kwargs: Any) -> Any: ...


class RetryingHttpClient:
    def __init__(
        self,
        inner: MsalHttpClient,
        *,
        max_retries: int = 2,
        max_retry_after: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = system_clock,
        timeout: float | None = None,
    ) -> None:
        self.inner = inner
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock
        self._timeout = timeout
        self._local = threading.local()

    def reset(self) -> None:
        self._local.status = None
        self._local.retry_after = None

    @property
    def last_status(self) -> int | None:
        return getattr(self._local, "status", None)

    @property
    def last_retry_after(self) -> float | None:
        return getattr(self._local, "retry_after", None)

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._timeout is not None:
            kwargs.setdefault("timeout", self._timeout)
        return kwargs

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.inner.get(url, **self._kwargs(kwargs))

    def post(self, url: str, **kwargs: Any) -> Any:
        kwargs = self._kwargs(kwargs)
        attempt = 0
        while True:
            response = self.inner.post(url, **kwargs)
            status = int(response.status_code)
            self._local.status = status
            if status not in _RETRY_STATUSES:
                self._local.retry_after = None
                return response
            headers: Mapping[str, str] = getattr(response, "headers", None) or {}
            lowered = {k.lower(): v for k, v in headers.items()}
            delay = parse_retry_after(lowered.get("retry-after"), self._clock.now())
            self._local.retry_after = delay
            if attempt >= self.max_retries or (delay is not None and delay > self.max_retry_after):
                return response
            # Without a Retry-After, back off briefly: 1 s, 2 s, ... within the same bound.
            self._sleep(delay if delay is not None else min(self.max_retry_after, 2.0**attempt))
            attempt += 1

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
