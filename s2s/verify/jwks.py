"""JWKS sources: where an issuer's verification keys come from, and how long they are trusted.

One source per configured issuer. The keys come from the configured ``jwks_uri`` or from discovery
(``{issuer}/.well-known/openid-configuration``, then the RFC 8414
``/.well-known/oauth-authorization-server`` location); a discovery document is used only if its
``issuer`` is exactly the configured issuer. Fetches are https only (plain http to loopback), with
a timeout (per read, and for the whole body), a body-size cap and a key-count cap, and never
follow redirects.

Freshness: a fetched key set lives for the ``Cache-Control: max-age`` of its response, clamped to
``[jwks_min_ttl, jwks_max_ttl]`` (``jwks_ttl`` when absent). An unknown kid causes a refetch at most
once per ``refetch_cooldown``; concurrent misses share one fetch; a kid still unknown after a fetch
is remembered (and refused without I/O) until the next successful fetch. A kid refused only because
of the cooldown is not remembered, so a key published during the cooldown is found afterwards.
When a fetch fails the last good keys keep working until they are ``max_staleness`` old.

Loading drops keys one by one, never the whole set: ``oct`` keys, RSA below 2048 bits, keys with
private members, ``use`` other than ``sig``, unsupported or invalid keys. A kid that appears more
than once is ambiguous: every entry with that kid is dropped (the other keys stay), because a
verifier cannot know which of them the issuer meant.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from s2s.clock import Clock, SystemClock, system_clock
from s2s.errors import ConfigError
from s2s.verify.algorithms import AlgorithmPolicy, KeyRejected, VerifyKey, load_jwk
from s2s.verify.config import VerifierConfig, check_fetch_url
from s2s.verify.errors import InvalidToken

__all__ = [
    "AsyncJWKSSource",
    "JWKSError",
    "KeySnapshot",
    "SyncJWKSSource",
    "discovery_urls",
    "parse_jwks",
    "ttl_from_cache_control",
]

log = logging.getLogger("s2s.verify.jwks")

MAX_REMEMBERED_UNKNOWN_KIDS = 4096
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


class JWKSError(Exception):
    """A JWKS or discovery fetch failed; the message is short and safe to log."""


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    keys: Mapping[str, VerifyKey]
    fetched_at: float  # monotonic
    expires_at: float  # monotonic
    generation: int


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


def ttl_from_cache_control(value: str | None, config: VerifierConfig) -> float:
    ttl = config.jwks_ttl
    if value:
        lowered = value.lower()
        if "no-store" in lowered or "no-cache" in lowered:
            ttl = config.jwks_min_ttl
        else:
            match = _MAX_AGE.search(value)
            if match:
                ttl = float(match.group(1))
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


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise JWKSError("response is not JSON") from None


class _SourceState:
    """The policy shared by the async and the sync source; subclasses only do the I/O."""

    def __init__(self, config: VerifierConfig, clock: Clock) -> None:
        self.config = config
        self.issuer = config.issuer
        self._clock = clock
        # The system clock is read directly on the per-token path (no Python frame in between).
        self._monotonic = time.monotonic if type(clock) is SystemClock else clock.monotonic
        self._jwks_uri = config.jwks_uri
        self._snapshot: KeySnapshot | None = None
        self._unknown: set[str] = set()
        self._last_attempt: float | None = None
        self._generation = 0
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

    def _needs_fetch(self, kid: str) -> bool:
        now = self._clock.monotonic()
        if self._last_attempt is not None and now - self._last_attempt < self.config.refetch_cooldown:
            return False
        snap = self._snapshot
        if snap is None or now >= snap.expires_at:
            return True
        return kid not in snap.keys and kid not in self._unknown

    def _usable_key(self, kid: str, *, after_fetch: bool) -> VerifyKey:
        snap = self._snapshot
        if snap is None or self._clock.monotonic() - snap.fetched_at > self.config.max_staleness:
            raise InvalidToken("signing keys unavailable")
        key = snap.keys.get(kid)
        if key is None:
            # Only a kid that a fetch just confirmed absent is remembered; one refused because of
            # the cooldown gets its refetch once the cooldown is over (a rotation in progress).
            if after_fetch and len(self._unknown) < MAX_REMEMBERED_UNKNOWN_KIDS:
                self._unknown.add(kid)
            raise InvalidToken("unknown key")
        return key

    @property
    def jwks_uri(self) -> str | None:
        return self._jwks_uri

    @property
    def kids(self) -> tuple[str, ...]:
        snap = self._snapshot
        return tuple(snap.keys) if snap is not None else ()

    def describe(self) -> dict[str, Any]:
        snap = self._snapshot
        now = self._clock.monotonic()
        return {
            "issuer": self.issuer,
            "jwks_uri": self._jwks_uri,
            "keys": [k.describe() for k in snap.keys.values()] if snap else [],
            "age_seconds": round(now - snap.fetched_at, 1) if snap else None,
            "fresh": bool(snap and now < snap.expires_at),
        }

    # -- writing -----------------------------------------------------------------------------------

    def _begin_attempt(self) -> None:
        self._last_attempt = self._clock.monotonic()
        self.fetch_count += 1

    def _accept_discovery(self, doc: Any) -> str:
        if not isinstance(doc, dict) or doc.get("issuer") != self.issuer:
            raise JWKSError("discovery document is for another issuer")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str):
            raise JWKSError("discovery document has no jwks_uri")
        try:
            check_fetch_url(uri, "discovered jwks_uri")
        except ConfigError as exc:
            raise JWKSError(str(exc)) from None
        return uri

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
        ttl = ttl_from_cache_control(cache_control, self.config)
        now = self._clock.monotonic()
        self._generation += 1
        self._snapshot = KeySnapshot(
            keys=keys, fetched_at=now, expires_at=now + ttl, generation=self._generation
        )
        self._unknown.clear()

    def _failed(self, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, JWKSError) else type(exc).__name__
        log.warning("JWKS fetch for %s failed: %s; keeping the last good keys", self.issuer, reason)

    def _take(self, body: bytearray, chunk: bytes, deadline: float) -> None:
        body.extend(chunk)
        if len(body) > self.config.max_jwks_bytes:
            raise JWKSError("response too large")
        # httpx's timeout bounds each read, not the whole body: a server sending a few bytes per
        # read would hold the shared fetch (and every request waiting on it) for hours.
        if self._clock.monotonic() > deadline:
            raise JWKSError("response too slow")

    def _check_response(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise JWKSError(f"HTTP {response.status_code}")
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.config.max_jwks_bytes:
            raise JWKSError("response too large")


class AsyncJWKSSource(_SourceState):
    def __init__(
        self,
        config: VerifierConfig,
        client: Callable[[], httpx.AsyncClient],
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(config, clock)
        self._client = client
        self._inflight: asyncio.Future[None] | None = None

    async def get_key(self, kid: str) -> VerifyKey:
        key = self.fresh_key(kid)
        if key is not None:
            return key
        if self._needs_fetch(kid) or self._inflight is not None:
            await self.refresh()
            return self._usable_key(kid, after_fetch=True)
        return self._usable_key(kid, after_fetch=False)

    async def refresh(self) -> None:
        """Fetch now, or join the fetch already under way (never raises)."""
        inflight = self._inflight
        if inflight is None or inflight.done():
            inflight = self._inflight = asyncio.ensure_future(self._fetch())
        # shield: a cancelled caller must not cancel the fetch the others are waiting for.
        await asyncio.shield(inflight)

    async def _fetch(self) -> None:
        self._begin_attempt()
        try:
            if self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            doc, cache_control = await self._get(self._jwks_uri)
            self._install(doc, cache_control)
        except Exception as exc:
            self._failed(exc)
        finally:
            self._inflight = None

    async def _discover(self) -> str:
        last: Exception = JWKSError("discovery failed")
        for url in discovery_urls(self.issuer):
            try:
                doc, _ = await self._get(url)
                return self._accept_discovery(doc)
            except (JWKSError, httpx.HTTPError) as exc:
                last = exc
        raise last

    async def _get(self, url: str) -> tuple[Any, str | None]:
        deadline = self._clock.monotonic() + self.config.http_timeout
        request = self._client().stream(
            "GET",
            url,
            headers={"Accept": "application/json"},
            timeout=self.config.http_timeout,
            follow_redirects=False,
        )
        async with request as response:
            self._check_response(response)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                self._take(body, chunk, deadline)
            return _json_body(bytes(body)), response.headers.get("cache-control")


class SyncJWKSSource(_SourceState):
    def __init__(
        self,
        config: VerifierConfig,
        client: Callable[[], httpx.Client],
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(config, clock)
        self._client = client
        self._lock = threading.Lock()

    def get_key(self, kid: str) -> VerifyKey:
        key = self.fresh_key(kid)
        if key is not None:
            return key
        if self._needs_fetch(kid):
            self.refresh()
            return self._usable_key(kid, after_fetch=True)
        return self._usable_key(kid, after_fetch=False)

    def refresh(self) -> None:
        seen = self._last_attempt
        with self._lock:
            # Another thread fetched while this one waited for the lock: share its result.
            if self._last_attempt != seen:
                return
            self._begin_attempt()
            try:
                if self._jwks_uri is None:
                    self._jwks_uri = self._discover()
                doc, cache_control = self._get(self._jwks_uri)
                self._install(doc, cache_control)
            except Exception as exc:
                self._failed(exc)

    def _discover(self) -> str:
        last: Exception = JWKSError("discovery failed")
        for url in discovery_urls(self.issuer):
            try:
                doc, _ = self._get(url)
                return self._accept_discovery(doc)
            except (JWKSError, httpx.HTTPError) as exc:
                last = exc
        raise last

    def _get(self, url: str) -> tuple[Any, str | None]:
        deadline = self._clock.monotonic() + self.config.http_timeout
        request = self._client().stream(
            "GET",
            url,
            headers={"Accept": "application/json"},
            timeout=self.config.http_timeout,
            follow_redirects=False,
        )
        with request as response:
            self._check_response(response)
            body = bytearray()
            for chunk in response.iter_bytes():
                self._take(body, chunk, deadline)
            return _json_body(bytes(body)), response.headers.get("cache-control")
