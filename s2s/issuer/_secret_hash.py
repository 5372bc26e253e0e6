"""Client secrets: how they are made, stored (a salted scrypt hash) and checked.

:class:`SecretVerifier` is the token endpoint's check: it remembers recent successes under a MAC so
the slow hash runs once per client and secret, not once per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError

if TYPE_CHECKING:
    from s2s.issuer.clients import Client

__all__ = ["SecretVerifier", "generate_secret", "hash_secret", "parse_secret_hash", "verify_secret"]

# scrypt N=2^15, r=8, p=1: ~32 MiB and tens of ms per hash. The secrets are 256 random bits, so
# the hash guards a leaked registry file; it is not what stops online guessing (rate limiting is).
_SCRYPT_LOG_N = 15
_SCRYPT_R = 8
_SCRYPT_P = 1


def generate_secret() -> str:
    """A new client secret: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p + (1 << 20), dklen=32
    )


def hash_secret(secret: str) -> str:
    """``scrypt$ln=15,r=8,p=1$<salt>$<hash>``: parameters travel with the hash so they can grow."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, _SCRYPT_LOG_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt$ln={_SCRYPT_LOG_N},r={_SCRYPT_R},p={_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def parse_secret_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    try:
        scheme, params, salt, digest = encoded.split("$")
        values = dict(item.split("=", 1) for item in params.split(","))
        log_n, r, p = int(values["ln"]), int(values["r"]), int(values["p"])
        raw_salt, raw_digest = _unb64(salt), _unb64(digest)
    except (ValueError, KeyError) as exc:
        raise ConfigError("malformed secret hash") from exc
    # Bounds keep a tampered registry from making one request allocate gigabytes.
    if scheme != "scrypt" or not (10 <= log_n <= 20 and 1 <= r <= 16 and 1 <= p <= 4):
        raise ConfigError("unsupported secret hash parameters")
    if len(raw_salt) < 16 or len(raw_digest) != 32:
        raise ConfigError("malformed secret hash")
    return log_n, r, p, raw_salt, raw_digest


def verify_secret(secret: str, encoded: str) -> bool:
    """Constant-time check of ``secret`` against a :func:`hash_secret` value."""
    log_n, r, p, salt, expected = parse_secret_hash(encoded)
    try:
        actual = _scrypt(secret, salt, log_n, r, p)
    except (ValueError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(actual, expected)


class SecretVerifier:
    """Checks client secrets, remembering recent successes so the slow hash runs rarely.

    A success is cached under a MAC (keyed BLAKE2b) of (client id, stored hash, secret) for ``ttl``
    seconds: the clear secret is never kept, a changed hash (new secret) misses the cache, and the
    process key makes entries useless outside this process. Failures are never cached.
    """

    def __init__(self, clock: Clock = system_clock, *, ttl: float = 300.0, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._key = secrets.token_bytes(32)
        self._ok: dict[bytes, float] = {}

    def _cache_key(self, client: Client, secret: str) -> bytes:
        assert client.secret_hash is not None
        msg = b"\0".join(
            (client.client_id.encode(), client.secret_hash.encode(), secret.encode("utf-8", "replace"))
        )
        # Keyed BLAKE2b (RFC 7693) is a MAC by itself, and about twice as fast here as HMAC-SHA256.
        return hashlib.blake2b(msg, key=self._key, digest_size=32).digest()

    def cached(self, client: Client, secret: str) -> bool:
        """True when this exact secret was verified for this client recently."""
        if client.secret_hash is None:
            return False
        key = self._cache_key(client, secret)
        until = self._ok.get(key)
        if until is None:
            return False
        if self._clock.monotonic() >= until:
            self._ok.pop(key, None)
            return False
        return True

    def verify_slow(self, client: Client, secret: str) -> bool:
        """The full scrypt check; remembers a success. Safe to call from a worker thread."""
        if client.secret_hash is None:
            return False
        ok = verify_secret(secret, client.secret_hash)
        if ok:
            if len(self._ok) >= self._max:
                now = self._clock.monotonic()
                self._ok = {k: v for k, v in self._ok.items() if v > now}
                if len(self._ok) >= self._max:
                    self._ok.clear()
            self._ok[self._cache_key(client, secret)] = self._clock.monotonic() + self._ttl
        return ok

    def verify(self, client: Client, secret: str) -> bool:
        return self.cached(client, secret) or self.verify_slow(client, secret)
