"""JWKS sources: an issuer's keys, fetched and cached, behind one refresh flow and two drivers.

The refresh (discovery when no ``jwks_uri`` is configured, then the JWKS) is written once, as a
generator that yields :class:`Fetch` steps and receives their outcome (:class:`Fetched`, or the
exception); :class:`AsyncJWKSSource` and :class:`SyncJWKSSource` only perform the steps (as the
token client and httpx's ``auth_flow`` do). Which request waits, and for what, is decided without
I/O too (:class:`JWKSSourceCore`). Concurrent refreshes are one (:mod:`s2s._flight`).

Fetching: https only (plain http to loopback). A discovered ``jwks_uri`` must be https; plain http
only when the configured issuer is itself an http loopback URL. Redirects are never followed;
the body is capped (``max_jwks_bytes``) and so is the key count (``max_keys``). ONE total deadline,
``http_timeout`` (5 s by default), bounds the whole refresh: discovery, JWKS, headers and body.
httpx's own timeouts bound each read only, so a host trickling its headers a byte at a time would
never trip them: the async driver runs the exchange under ``asyncio.timeout``; the sync driver
runs it in a helper thread that the caller waits for until the deadline, then shuts the socket.

Freshness: a key set lives for the ``Cache-Control: max-age`` of its response, at most
``jwks_max_ttl`` (24 h), at least ``jwks_min_ttl`` (60 s; lower it to honour shorter max-ages, down
to any value > 0: a ``jwks_ttl`` below it lowers it too). A max-age below ``jwks_min_ttl`` is not
silently stretched: a warning names the issuer, both figures and the setting. Without
Cache-Control the TTL is ``jwks_ttl`` (600 s); ``no-store``/``no-cache`` mean ``jwks_min_ttl``.

Which requests wait (``cooldown`` = ``refetch_cooldown``, 30 s by default):

* a kid in a key set within its TTL: served, no I/O (the per-token fast path);
* a kid in a key set past its TTL but within ``max_staleness`` (12 h): served at once from those
  last good keys, while ONE background refresh runs (stale while revalidate);
* a kid not in the key set: waits for a refresh (joining the one in flight), bounded by that
  refresh's deadline. A new refresh for an unknown kid starts only once ``cooldown`` has passed
  since the end of the previous attempt: a stream of random kids costs at most one fetch per
  cooldown per issuer, and a kid unknown at the last fetch is looked up again after the cooldown;
* after a failed attempt, no new one starts until ``cooldown`` after the END of that attempt;
* no usable keys at all (never fetched, or older than ``max_staleness``), or an unknown kid while
  the last attempt failed: :class:`~s2s.verify.errors.KeysUnavailable` (503, ``retry_after`` = the
  seconds until the next attempt may start), not ``invalid_token``: the fault is ours, not the
  caller's. The warning of each failed attempt names the URL that failed (never a token).

Loading drops keys one by one, never the whole set: ``oct`` keys, RSA below 2048 bits, keys with
private members, ``use`` other than ``sig``, unsupported or invalid keys. A kid that appears more
than once is ambiguous: every entry with that kid is dropped (the other keys stay), because a
verifier cannot know which of them the issuer meant.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import urlsplit

import httpx

from s2s._flight import AsyncSingleFlight, FlightTimeout, SingleFlight
from s2s.clock import Clock, SystemClock, system_clock
from s2s.errors import ConfigError
from s2s.jose import AlgorithmPolicy, KeyRejected, VerifyKey, load_jwk
from s2s.observe import HUB, Observer
from s2s.verify._config import VerifierConfig, check_discovered_url
from s2s.verify.errors import JWKSError, KeysUnavailable, UnknownKey

__all__ = [
    "AsyncJWKSSource",
    "Fetch",
    "Fetched",
    "JWKSError",
    "JWKSSourceCore",
    "KeySnapshot",
    "RefreshFlow",
    "SourceInfo",
    "SyncJWKSSource",
    "discovery_urls",
    "max_age",
    "parse_jwks",
    "ttl_from_cache_control",
]

log = logging.getLogger("s2s.verify.jwks")

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)
_ACCEPT = {"Accept": "application/json"}
# One flight per source: the key of its single-flight slot.
_REFRESH = "refresh"


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    keys: Mapping[str, VerifyKey]
    fetched_at: float  # monotonic
    expires_at: float  # monotonic
    generation: int


class SourceInfo(TypedDict):
    issuer: str
    jwks_uri: str | None
    keys: list[dict[str, str]]
    age_seconds: float | None
    fresh: bool


@dataclass(frozen=True, slots=True)
class Fetch:
    """A step: GET ``url`` (JSON, no redirects) and read at most ``max_bytes``, all by ``deadline``
    (on the source's monotonic clock)."""

    url: str
    deadline: float
    max_bytes: int


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    cache_control: str | None
    body: bytes


Outcome = Fetched | Exception
RefreshFlow = Generator[Fetch, Outcome, None]


def parse_jwks(doc: Any, policy: AlgorithmPolicy, max_keys: int) -> tuple[dict[str, VerifyKey], list[str]]:
    """The usable keys of a JWKS document, and one short reason per dropped entry."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JWKSError("not a JWKS document")
    entries: list[Any] = doc["keys"]
    if len(entries) > max_keys:
        raise JWKSError(f"JWKS has more than {max_keys} keys")
    counts: dict[str, int] = {}
    for entry in entries:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if isinstance(kid, str):
            counts[kid] = counts.get(kid, 0) + 1
    keys: dict[str, VerifyKey] = {}
    dropped: list[str] = []
    for index, entry in enumerate(entries):
        kid = entry.get("kid") if isinstance(entry, dict) else None
        label = kid if isinstance(kid, str) and len(kid) <= 80 else f"#{index}"
        if isinstance(kid, str) and counts[kid] > 1:
            dropped.append(f"{label}: duplicate kid")
            continue
        try:
            key = load_jwk(entry, policy)
        except KeyRejected as exc:
            dropped.append(f"{label}: {exc}")
            continue
        keys[key.kid] = key
    return keys, dropped


def max_age(cache_control: str | None) -> float | None:
    """The ``max-age`` of a Cache-Control value (0 for ``no-store``/``no-cache``), or None."""
    if not cache_control:
        return None
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


def ttl_from_cache_control(value: str | None, config: VerifierConfig) -> float:
    requested = max_age(value)
    ttl = config.jwks_ttl if requested is None else requested
    return min(max(ttl, config.jwks_min_ttl), config.jwks_max_ttl)


def discovery_urls(issuer: str) -> tuple[str, str]:
    """OpenID Connect Discovery §4, then RFC 8414 §3 (well-known inserted before the path)."""
    base = issuer.rstrip("/")
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return (
        f"{base}/.well-known/openid-configuration",
        f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}",
    )


def _reason(exc: BaseException) -> str:
    # httpx messages may carry the URL at most (no token ever reaches a JWKS request); the type is
    # enough and stays short.
    return str(exc) if isinstance(exc, JWKSError) else type(exc).__name__


class _Plan(enum.Enum):
    SERVE = 1  # the key is known and usable: no I/O
    BACKGROUND = 2  # known but past its TTL: serve it, refresh behind
    WAIT = 3  # unknown or no usable keys: wait for a refresh (join or start)
    REFUSE = 4  # unknown, and no refresh may start now


class _Body:
    """A response body read against the step's byte cap and deadline."""

    __slots__ = ("_clock", "_data", "_step")

    def __init__(self, step: Fetch, clock: Clock, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise JWKSError(f"HTTP {response.status_code}")
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > step.max_bytes:
            raise JWKSError("response too large")
        self._step, self._clock, self._data = step, clock, bytearray()

    def add(self, chunk: bytes) -> None:
        self._data.extend(chunk)
        if len(self._data) > self._step.max_bytes:
            raise JWKSError("response too large")
        # The drivers' deadline is on the real clock; this check also holds for an injected one.
        if self._clock.monotonic() > self._step.deadline:
            raise JWKSError("response too slow")

    def done(self, response: httpx.Response) -> Fetched:
        return Fetched(response.status_code, response.headers.get("cache-control"), bytes(self._data))


class JWKSSourceCore:
    """Everything about one issuer's keys but the I/O: state, decisions and the refresh flow."""

    observer: Observer = HUB  # the verifier that owns the source sets its own

    def __init__(self, config: VerifierConfig, clock: Clock) -> None:
        self.config = config
        self.issuer = config.issuer
        self._clock = clock
        # The system clock is read directly on the per-token path (no Python frame in between).
        self._monotonic = time.monotonic if type(clock) is SystemClock else clock.monotonic
        self._jwks_uri = config.jwks_uri
        # The current key set, replaced (never changed) by each successful fetch: the verified-
        # token cache (same package) compares it by identity to know that a key set is still the
        # one it checked.
        self._snapshot: KeySnapshot | None = None
        self._generation = 0
        # End of the last attempt, end of the last failed one (None after a success), deadline of
        # the attempt in flight: the cooldowns count from the end of an attempt, not its start.
        self._ended_at: float | None = None
        self._failed_at: float | None = None
        self._deadline = 0.0
        self._last_error = ""
        self._short_max_age_seen: set[float] = set()
        self.fetch_count = 0

    # -- reading -----------------------------------------------------------------------------------

    def fresh_key(self, kid: str) -> VerifyKey | None:
        """The key, if the current key set is within its TTL and has it: the no-I/O fast path."""
        snap = self._snapshot
        if snap is not None and self._monotonic() < snap.expires_at:
            return snap.keys.get(kid)
        return None

    def has_fresh_key(self, kid: str) -> bool:
        return self.fresh_key(kid) is not None

    @property
    def jwks_uri(self) -> str | None:
        return self._jwks_uri

    @property
    def kids(self) -> tuple[str, ...]:
        snap = self._snapshot
        return tuple(snap.keys) if snap is not None else ()

    @property
    def last_error(self) -> str:
        """What the last failed attempt met (URL and reason), or ""."""
        return self._last_error

    def describe(self) -> SourceInfo:
        snap = self._snapshot
        now = self._clock.monotonic()
        return {
            "issuer": self.issuer,
            "jwks_uri": self._jwks_uri,
            "keys": [k.describe() for k in snap.keys.values()] if snap else [],
            "age_seconds": round(now - snap.fetched_at, 1) if snap else None,
            "fresh": bool(snap and now < snap.expires_at),
        }

    # -- deciding ----------------------------------------------------------------------------------

    def _usable(self, now: float) -> KeySnapshot | None:
        snap = self._snapshot
        if snap is None or now - snap.fetched_at > self.config.max_staleness:
            return None
        return snap

    def _may_start(self, now: float, *, expired: bool) -> bool:
        cooldown = self.config.refetch_cooldown
        if self._failed_at is not None and now - self._failed_at < cooldown:
            return False
        return expired or self._ended_at is None or now - self._ended_at >= cooldown

    def _plan(self, kid: str, busy: bool) -> _Plan:
        """What a request for ``kid`` does, ``busy`` telling whether a refresh is in flight."""
        now = self._clock.monotonic()
        snap = self._usable(now)
        if snap is not None and kid in snap.keys:
            if busy or not self._may_start(now, expired=True):
                return _Plan.SERVE
            return _Plan.BACKGROUND
        if snap is not None:
            self.observer.jwks_unknown_kid(self.issuer)
        if busy:
            return _Plan.WAIT
        expired = snap is None or now >= snap.expires_at
        return _Plan.WAIT if self._may_start(now, expired=expired) else _Plan.REFUSE

    def _resolve(self, kid: str) -> VerifyKey:
        """The usable key for ``kid`` now, or the refusal that says why there is none."""
        now = self._clock.monotonic()
        snap = self._usable(now)
        key = snap.keys.get(kid) if snap is not None else None
        if key is not None:
            return key
        if snap is None or self._failed_at is not None:
            raise KeysUnavailable(retry_after=self._retry_after(now))
        raise UnknownKey()

    def _retry_after(self, now: float) -> int:
        cooldown = self.config.refetch_cooldown
        since = now - self._failed_at if self._failed_at is not None else cooldown
        return max(1, math.ceil(cooldown - since)) if since < cooldown else 1

    def _wait_bound(self, busy: bool) -> float:
        # A request waits for the refresh until that refresh's deadline (plus a little slack for
        # the driver to report): never longer than http_timeout, whatever the host does.
        if not busy:
            return self.config.http_timeout + 1.0
        return max(0.0, self._deadline - self._clock.monotonic()) + 1.0

    # -- the refresh flow --------------------------------------------------------------------------

    def refresh_flow(self) -> RefreshFlow:
        """Discovery (when needed) and the JWKS, under one deadline. Never raises."""
        self.fetch_count += 1
        started = self._clock.monotonic()
        self._deadline = started + self.config.http_timeout
        url = self._jwks_uri or self.issuer
        try:
            with self.observer.span("s2s.jwks.fetch", **{"s2s.issuer": self.issuer}):
                if self._jwks_uri is None:
                    url = yield from self._discover()
                doc, cache_control = self._document((yield self._fetch(url)))
                self._install(doc, cache_control)
            self._failed_at = None
        except JWKSError as exc:
            self._last_error = f"{url}: {exc}"
            log.warning(
                "JWKS fetch for %s failed: %s; %s",
                self.issuer,
                self._last_error,
                "keeping the last good keys" if self._snapshot is not None else "no keys yet",
            )
            self._failed_at = self._clock.monotonic()
        finally:
            self._ended_at = self._clock.monotonic()
            self._report(started)

    def _report(self, started: float) -> None:
        """The fetch's outcome for the observer, its times on the wall clock."""
        snap, ended = self._snapshot, self._clock.monotonic()
        offset = self._clock.now() - ended
        ok = self._failed_at is None and snap is not None
        fetched, expires = (snap.fetched_at + offset, snap.expires_at + offset) if snap else (0.0, 0.0)
        self.observer.jwks_fetched(self.issuer, ok, ended - started, fetched, expires)

    def _fetch(self, url: str) -> Fetch:
        return Fetch(url, self._deadline, self.config.max_jwks_bytes)

    def _document(self, outcome: Outcome) -> tuple[Any, str | None]:
        if isinstance(outcome, Exception):
            raise JWKSError(_reason(outcome))
        try:
            return json.loads(outcome.body), outcome.cache_control
        except (ValueError, RecursionError):
            raise JWKSError("response is not JSON") from None

    def _discover(self) -> Generator[Fetch, Outcome, str]:
        last = JWKSError("discovery failed")
        for url in discovery_urls(self.issuer):
            try:
                doc, _ = self._document((yield self._fetch(url)))
                uri = self._accept_discovery(doc)
            except JWKSError as exc:
                last = JWKSError(f"discovery at {url}: {exc}")
                continue
            self._jwks_uri = uri
            return uri
        raise last

    def _accept_discovery(self, doc: Any) -> str:
        if not isinstance(doc, dict) or doc.get("issuer") != self.issuer:
            raise JWKSError("discovery document is for another issuer")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str):
            raise JWKSError("discovery document has no jwks_uri")
        try:
            return check_discovered_url(uri, self.issuer)
        except ConfigError as exc:
            raise JWKSError(str(exc)) from None

    def _install(self, doc: Any, cache_control: str | None) -> None:
        keys, dropped = parse_jwks(doc, self.config.policy, self.config.max_keys)
        if self._snapshot is not None:
            # An unchanged key keeps its identity, which is what the verified-token cache checks:
            # its entries survive a refetch, while a new key under an old kid drops them.
            previous = self._snapshot.keys
            for kid, key in keys.items():
                old = previous.get(kid)
                if old is not None and old == key:
                    keys[kid] = old
        for reason in dropped:
            log.warning("JWKS of %s: key dropped (%s)", self.issuer, reason)
        requested = max_age(cache_control)
        if (
            requested is not None
            and requested < self.config.jwks_min_ttl
            and requested not in self._short_max_age_seen
            and len(self._short_max_age_seen) < 16
        ):
            self._short_max_age_seen.add(requested)
            log.warning(
                "JWKS of %s asks max-age=%g s, below this verifier's jwks_min_ttl=%g s: keys are"
                " kept %g s; set jwks_min_ttl to %g or less to honour it",
                self.issuer,
                requested,
                self.config.jwks_min_ttl,
                self.config.jwks_min_ttl,
                max(requested, 1),
            )
        ttl = ttl_from_cache_control(cache_control, self.config)
        now = self._clock.monotonic()
        self._generation += 1
        self._snapshot = KeySnapshot(
            keys=keys, fetched_at=now, expires_at=now + ttl, generation=self._generation
        )


class AsyncJWKSSource(JWKSSourceCore):
    """The asyncio driver (``httpx.AsyncClient``)."""

    def __init__(
        self,
        config: VerifierConfig,
        client: Callable[[], httpx.AsyncClient],
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(config, clock)
        self._client = client
        self._flight: AsyncSingleFlight[str, None] = AsyncSingleFlight()

    async def get_key(self, kid: str) -> VerifyKey:
        key = self.fresh_key(kid)
        if key is not None:
            return key
        busy = self._flight.in_flight(_REFRESH)
        plan = self._plan(kid, busy)
        if plan is _Plan.BACKGROUND:
            self._flight.start(_REFRESH, self._run)
        elif plan is _Plan.WAIT:
            # A refresh that outlives its deadline: decide with what is known.
            with contextlib.suppress(FlightTimeout):
                await self._flight.do(_REFRESH, self._run, timeout=self._wait_bound(busy))
        return self._resolve(kid)

    async def refresh(self) -> None:
        """Fetch now, or join the fetch already under way (never raises)."""
        await self._flight.do(_REFRESH, self._run)

    async def wait_idle(self) -> None:
        """Wait until no refresh is in flight (a background one included)."""
        await self._flight.wait(_REFRESH)

    async def _run(self) -> None:
        flow = self.refresh_flow()
        try:
            step = next(flow)
            while True:
                step = flow.send(await self._exchange(step))
        except StopIteration:
            pass

    async def _exchange(self, step: Fetch) -> Outcome:
        remaining = step.deadline - self._clock.monotonic()
        try:
            if remaining <= 0:
                raise JWKSError(f"no time left of the {self.config.http_timeout:g} s deadline")
            # One deadline over the whole exchange: connect, headers, body.
            async with asyncio.timeout(remaining):
                request = self._client().stream(
                    "GET", step.url, headers=_ACCEPT, timeout=remaining, follow_redirects=False
                )
                async with request as response:
                    body = _Body(step, self._clock, response)
                    async for chunk in response.aiter_bytes():
                        body.add(chunk)
                    return body.done(response)
        except TimeoutError:
            return JWKSError(f"no complete answer within {self.config.http_timeout:g} s")
        except Exception as exc:
            return exc


class _Exchange:
    """One blocking request on a helper thread, abortable from the waiting thread."""

    def __init__(self, client: httpx.Client, step: Fetch, clock: Clock, timeout: float) -> None:
        self._client, self._step, self._clock, self._timeout = client, step, clock, timeout
        self.done = threading.Event()
        self.outcome: Outcome = JWKSError("no answer")
        self._sockets: list[socket.socket] = []

    def _trace(self, event: str, info: Mapping[str, Any]) -> None:
        # httpcore reports the connections it opens: a hung one can then be shut from outside.
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                self._sockets.append(sock)

    def run(self) -> None:
        try:
            request = self._client.stream(
                "GET",
                self._step.url,
                headers=_ACCEPT,
                timeout=self._timeout,
                follow_redirects=False,
                extensions={"trace": self._trace},
            )
            with request as response:
                body = _Body(self._step, self._clock, response)
                for chunk in response.iter_bytes():
                    body.add(chunk)
                self.outcome = body.done(response)
        except Exception as exc:
            self.outcome = exc
        finally:
            self.done.set()

    def abort(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class SyncJWKSSource(JWKSSourceCore):
    """The blocking driver (``httpx.Client``); thread-safe."""

    def __init__(
        self,
        config: VerifierConfig,
        client: Callable[[], httpx.Client],
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(config, clock)
        self._client = client
        self._flight: SingleFlight[str, None] = SingleFlight(name="s2s-jwks-refresh")

    def get_key(self, kid: str) -> VerifyKey:
        key = self.fresh_key(kid)
        if key is not None:
            return key
        busy = self._flight.in_flight(_REFRESH)
        plan = self._plan(kid, busy)
        if plan is _Plan.BACKGROUND:
            self._flight.start(_REFRESH, self._run)
        elif plan is _Plan.WAIT:
            # A refresh that outlives its deadline: decide with what is known.
            with contextlib.suppress(FlightTimeout):
                self._flight.do(_REFRESH, self._run, timeout=self._wait_bound(busy))
        return self._resolve(kid)

    def refresh(self) -> None:
        """Fetch now, or join the fetch already under way (never raises)."""
        self._flight.do(_REFRESH, self._run)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no refresh is in flight (a background one included); False on timeout."""
        return self._flight.wait(_REFRESH, timeout)

    def _run(self) -> None:
        flow = self.refresh_flow()
        try:
            step = next(flow)
            while True:
                step = flow.send(self._exchange(step))
        except StopIteration:
            pass

    def _exchange(self, step: Fetch) -> Outcome:
        remaining = step.deadline - self._clock.monotonic()
        if remaining <= 0:
            return JWKSError(f"no time left of the {self.config.http_timeout:g} s deadline")
        exchange = _Exchange(self._client(), step, self._clock, remaining)
        threading.Thread(target=exchange.run, name="s2s-jwks-fetch", daemon=True).start()
        if not exchange.done.wait(remaining):
            exchange.abort()
            return JWKSError(f"no complete answer within {self.config.http_timeout:g} s")
        return exchange.outcome
