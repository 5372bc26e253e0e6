"""Where a client assertion comes from: sources that refresh themselves.

A workload without a secret proves who it is with a token its platform gives it: a Kubernetes
projected service-account token (a file the kubelet rewrites), a GitHub Actions OIDC token, a
SPIFFE JWT-SVID. An :class:`AssertionSource` hands out the current one; :class:`ClientAssertion
<s2s.client.ClientAssertion>` sends it as an RFC 7523 client assertion.

* :class:`FileAssertionSource` — a file, re-read when it changes (a new inode, mtime or size: the
  kubelet swaps a ``..data`` symlink to a new directory) and whenever the token it holds is close to
  its expiry.
* :class:`EnvAssertionSource` — an environment variable, read at every call.
* :class:`CallableAssertionSource` — a function, sync or async, called at every acquisition.
* :class:`SpiffeAssertionSource` — a JWT-SVID from the SPIFFE Workload API (``s2s[spiffe]``).

Every source refuses to hand out an assertion whose ``exp`` has passed
(:class:`~s2s.client.AssertionExpired`, naming the source and the expiry); messages and logs name
the source, never the token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import inspect
import json
import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from s2s.client.errors import AssertionExpired, AssertionUnavailable
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError, MissingExtra

__all__ = [
    "AssertionSource",
    "CallableAssertionSource",
    "EnvAssertionSource",
    "FileAssertionSource",
    "SpiffeAssertionSource",
    "assertion_expiry",
    "obtain_async",
]

log = logging.getLogger("s2s.client")

# Platform tokens are a few KiB; anything far larger is not one (and is not read into memory).
_MAX_ASSERTION = 64 * 1024
# A token this close to its expiry makes a file source look at its file again (cheap: one read).
_DEFAULT_MARGIN = 60.0


@runtime_checkable
class AssertionSource(Protocol):
    """Where a client assertion comes from.

    ``get()`` returns the current, unexpired assertion (raising
    :class:`~s2s.client.AssertionUnavailable` or :class:`~s2s.client.AssertionExpired`). A source
    may also define ``async def aget()``, which the async token client awaits instead; without it,
    ``get()`` runs in a worker thread.
    """

    def get(self) -> str:
        """The current, unexpired assertion."""
        ...


async def obtain_async(source: AssertionSource) -> str:
    """``await source.aget()`` when the source has it, else ``get()`` in a worker thread."""
    aget: Callable[[], Awaitable[str]] | None = getattr(source, "aget", None)
    if aget is not None:
        return await aget()
    return await asyncio.to_thread(source.get)


def assertion_expiry(assertion: str) -> float | None:
    """The ``exp`` of a compact JWT, read without verifying it (the issuer verifies); ``None`` for
    anything that is not a JWT with a finite numeric ``exp``. Total: whatever the token holds
    (deep nesting, a number no float holds, bytes that are not JSON), it never raises."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            return None
        seconds = float(exp)
    # RecursionError: ``[[[[...]]]]`` nested deeper than the parser goes; OverflowError: an
    # integer exp beyond any float.
    except (ValueError, binascii.Error, RecursionError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) else None


# The instants a datetime can show; the expiry of a token is any finite float.
_FIRST, _LAST = dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)


def _when(timestamp: float) -> str:
    """``timestamp`` as an ISO 8601 instant, for messages; total (clamped to the years 1..9999)."""
    try:
        instant = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    except (OverflowError, OSError, ValueError):
        instant = _LAST if timestamp > 0 else _FIRST
    return instant.isoformat(timespec="seconds").replace("+00:00", "Z")


def _checked(value: object, where: str, clock: Clock) -> tuple[str, float | None]:
    """``value`` as an assertion (stripped text) and its expiry; typed errors name ``where`` only."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise AssertionUnavailable(f"{where} does not hold a token (not ASCII)") from None
    if not isinstance(value, str):
        raise AssertionUnavailable(f"{where} gave a {type(value).__name__}, not a token string")
    text = value.strip()
    if not text:
        raise AssertionUnavailable(f"{where} is empty")
    if len(text) > _MAX_ASSERTION or any(c.isspace() or not c.isprintable() for c in text):
        raise AssertionUnavailable(f"{where} does not hold one token")
    exp = assertion_expiry(text)
    now = clock.now()
    if exp is not None and exp <= now:
        raise AssertionExpired(
            f"{where} has an assertion that expired at {_when(exp)} ({now - exp:.0f}s ago); "
            "whatever refreshes it has stopped",
            where=where,
            expired_at=exp,
        )
    return text, exp


@dataclass(frozen=True, slots=True)
class _Read:
    signature: tuple[int, int, int, int]
    value: str
    exp: float | None


class FileAssertionSource:
    """An assertion in a file that something else keeps fresh (kubelet, a sidecar, a CI runner).

    Each :meth:`get` looks at the file's identity (device, inode, mtime, size) and reads it again
    when that changed or when the token it held has less than ``refresh_margin`` seconds left, so a
    rewrite is picked up at the next acquisition whichever way it was written: an atomic rename, the
    kubelet's ``..data`` symlink swap, or in place. While a writer that is not atomic has left the
    file missing or empty, the previous token is used if it is still valid. An expired token is
    never handed out: :class:`~s2s.client.AssertionExpired` names the file and the expiry.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock = system_clock,
        refresh_margin: float = _DEFAULT_MARGIN,
    ) -> None:
        self.path = os.fspath(path)
        if not self.path:
            raise ConfigError("the assertion file path is empty")
        if refresh_margin < 0:
            raise ConfigError("refresh_margin must be >= 0")
        self._clock = clock
        self._margin = float(refresh_margin)
        self._lock = threading.Lock()
        self._last: _Read | None = None
        self.reads = 0  # how often the file was read (tests, metrics)

    def __repr__(self) -> str:
        return f"FileAssertionSource({self.path!r})"

    @property
    def _where(self) -> str:
        return f"the assertion file {self.path}"

    def get(self) -> str:
        with self._lock:
            last = self._last
            try:
                st = os.stat(self.path)  # follows the symlinks: the kubelet's token -> ..data/token
            except OSError as exc:
                return self._fallback(last, f"cannot read {self._where}: {exc.strerror or exc}")
            signature = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            now = self._clock.now()
            if (
                last is not None
                and last.signature == signature
                and (last.exp is None or last.exp - now > self._margin)
            ):
                return last.value
            return self._read(last)

    async def aget(self) -> str:
        # One stat and, now and then, one read of a few KiB: not worth a thread hop.
        return self.get()

    def _read(self, last: _Read | None) -> str:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            return self._fallback(last, f"cannot read {self._where}: {exc.strerror or exc}")
        try:
            # The identity of what was read, not of what the path pointed at a moment before.
            st = os.fstat(fd)
            data = os.read(fd, _MAX_ASSERTION + 1)
        except OSError as exc:
            return self._fallback(last, f"cannot read {self._where}: {exc.strerror or exc}")
        finally:
            os.close(fd)
        self.reads += 1
        if not data.strip():
            return self._fallback(last, f"{self._where} is empty")
        value, exp = _checked(data, self._where, self._clock)
        self._last = _Read((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size), value, exp)
        if (last is None or last.value != value) and log.isEnabledFor(logging.DEBUG):
            expiry = _when(exp) if exp is not None else "unknown"
            log.debug("read a new assertion from %s (expires %s)", self.path, expiry)
        return value

    def _fallback(self, last: _Read | None, problem: str) -> str:
        """The file is missing or empty (a writer that is not atomic is at work): the previous
        token while it is valid, else the problem. Its identity is kept stale, so the next call
        looks again."""
        if last is not None and (last.exp is None or last.exp > self._clock.now()):
            log.warning("%s; using the assertion read before", problem)
            self._last = _Read((-1, -1, -1, -1), last.value, last.exp)
            return last.value
        if last is not None and last.exp is not None:
            raise AssertionExpired(
                f"{problem}, and the assertion read before expired at {_when(last.exp)}",
                where=self._where,
                expired_at=last.exp,
            )
        raise AssertionUnavailable(problem)


class EnvAssertionSource:
    """An assertion in an environment variable (e.g. a CI job's OIDC token), read at every call."""

    def __init__(
        self, name: str, *, environ: Mapping[str, str] | None = None, clock: Clock = system_clock
    ) -> None:
        if not name:
            raise ConfigError("the environment variable name is empty")
        self.name = name
        self._env = os.environ if environ is None else environ
        self._clock = clock

    def __repr__(self) -> str:
        return f"EnvAssertionSource({self.name!r})"

    def get(self) -> str:
        where = f"the environment variable {self.name}"
        raw = self._env.get(self.name)
        if raw is None or not raw.strip():
            raise AssertionUnavailable(f"{where} is not set")
        return _checked(raw, where, self._clock)[0]

    async def aget(self) -> str:
        return self.get()


class CallableAssertionSource:
    """An assertion from a function: ``fn()`` returning the token (``str``/``bytes``), or a
    coroutine function. Called at every acquisition: cache inside ``fn`` if it is expensive.

    From the blocking client an async ``fn`` runs in its own event loop (only where none is running
    in that thread); the async client awaits it, and runs a blocking ``fn`` in a worker thread.
    """

    def __init__(
        self, fn: Callable[[], Any], *, name: str | None = None, clock: Clock = system_clock
    ) -> None:
        if not callable(fn):
            raise ConfigError("the assertion source needs a callable")
        self._fn = fn
        self._clock = clock
        self.name = name or getattr(fn, "__qualname__", None) or type(fn).__name__

    def __repr__(self) -> str:
        return f"CallableAssertionSource({self.name!r})"

    @property
    def _where(self) -> str:
        return f"the assertion callable {self.name}"

    def get(self) -> str:
        result = self._call(self._fn)
        if inspect.isawaitable(result):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                in_loop = False
            else:
                in_loop = True
            if in_loop:
                if inspect.iscoroutine(result):
                    result.close()
                raise AssertionUnavailable(
                    f"{self._where} is async and this thread runs an event loop: use AsyncTokenClient"
                )
            # Outside the ``except`` above: a failure of ``fn`` must not carry that RuntimeError.
            result = asyncio.run(self._await(result))
        return _checked(result, self._where, self._clock)[0]

    async def aget(self) -> str:
        if inspect.iscoroutinefunction(self._fn):
            result = self._call(self._fn)
        else:
            result = await asyncio.to_thread(self._call, self._fn)
        if inspect.isawaitable(result):
            result = await self._await(result)
        return _checked(result, self._where, self._clock)[0]

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except AssertionUnavailable:
            raise
        except Exception as exc:
            failure = type(exc).__name__
        raise self._failed(failure) from None

    async def _await(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except AssertionUnavailable:
            raise
        except Exception as exc:
            failure = type(exc).__name__
        raise self._failed(failure) from None

    def _failed(self, failure: str) -> AssertionUnavailable:
        # Only the type: the message of a failure in user code is not known to be token-free. Raised
        # after the ``except`` block, so the user's exception is neither the cause nor the context:
        # no traceback printer, ``log.exception`` or debugger walking the chain reaches it.
        return AssertionUnavailable(f"{self._where} failed: {failure}")


class SpiffeAssertionSource:
    """A JWT-SVID for ``audience`` from the SPIFFE Workload API (SPIRE agent), fetched at every call.

    Needs the ``s2s[spiffe]`` extra (py-spiffe). The agent's socket is ``socket_path`` (e.g.
    ``unix:///run/spire/agent.sock``), else ``SPIFFE_ENDPOINT_SOCKET``. ``subject`` picks one
    SPIFFE ID when the workload has several. ``client`` may be a py-spiffe ``WorkloadApiClient`` or
    ``JwtSource`` the caller already has: it stays the caller's to close. One this source opens
    itself it closes in :meth:`close` (also the context manager's exit), and only that one.
    """

    def __init__(
        self,
        audience: str,
        *,
        subject: str | None = None,
        socket_path: str | None = None,
        client: Any = None,
        timeout: float = 5.0,
        clock: Clock = system_clock,
    ) -> None:
        if not audience:
            raise ConfigError("a JWT-SVID needs an audience (the issuer's identifier)")
        try:
            import spiffe  # noqa: PLC0415 - the optional [spiffe] extra
            from spiffe.errors import ArgumentError  # noqa: PLC0415
        except ImportError:
            raise MissingExtra("spiffe", "spiffe") from None
        self.audience = audience
        self._clock = clock
        self._timeout = timeout
        self._subject = spiffe.SpiffeId(subject) if subject else None
        self._owns_client = client is None
        if client is None:
            try:
                client = spiffe.WorkloadApiClient(socket_path, default_timeout=timeout)
            except ArgumentError as exc:
                raise ConfigError(f"cannot use the SPIFFE Workload API: {exc}") from None
            where = client.get_spiffe_endpoint_socket()
        else:
            where = socket_path or "the given client"
        self._client = client
        self._where = f"the SPIFFE Workload API ({where})"
        self._closed = False

    def __repr__(self) -> str:
        return f"SpiffeAssertionSource({self.audience!r}, {self._where!r})"

    def get(self) -> str:
        if self._closed:
            raise AssertionUnavailable(f"{self._where}: the source is closed")
        # A py-spiffe JwtSource has fetch_svid, a WorkloadApiClient fetch_jwt_svid: same arguments.
        fetch = getattr(self._client, "fetch_svid", None) or self._client.fetch_jwt_svid
        try:
            svid = fetch({self.audience}, self._subject, timeout=self._timeout)
        except Exception as exc:
            failure = type(exc).__name__
        else:
            return _checked(getattr(svid, "token", None), self._where, self._clock)[0]
        # py-spiffe's and gRPC's errors: the type is enough, and never quotes a token; raised outside
        # the ``except`` block so the original is not kept as the context either.
        raise AssertionUnavailable(f"{self._where} gave no JWT-SVID ({failure})") from None

    async def aget(self) -> str:
        # A gRPC call: not on the event loop.
        return await asyncio.to_thread(self.get)

    def close(self) -> None:
        """Close the Workload API client if this source opened it."""
        if not self._closed:
            self._closed = True
            if self._owns_client:
                self._client.close()

    def __enter__(self) -> SpiffeAssertionSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
