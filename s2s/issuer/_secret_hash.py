"""Client secrets: how they are made, stored and checked.

Secrets s2s generates are 256 random bits, so the stored form is a plain SHA-256 digest
(``sha256$<digest>``, domain-separated), compared in constant time. A slow password hash protects
*guessable* secrets; a 256-bit (or any >= 128-bit) random secret cannot be guessed offline from its
SHA-256, with or without a salt or pepper, so scrypt would only give an attacker a way to burn our
CPU (one wrong secret = tens of ms and 32 MiB). A pepper would add a key every replica must hold and
nobody may lose, for no gain at this entropy: we choose none (docs/security.md). What keeps this
sound is the entropy floor: :func:`hash_secret` refuses a secret below 128 bits
(:func:`secret_entropy_bits`), so a user-chosen secret is never stored under the fast hash unless
it is as hard to guess as a generated one.

Registries written by earlier versions hold ``scrypt$...`` hashes: they are still accepted,
checked once on the slow path (the token endpoint runs it on a bounded pool) and replaced by the
fast hash after the first success (:meth:`s2s.issuer._token.TokenEndpoint` writes it back).
:class:`SecretVerifier` remembers recent scrypt successes so the slow hash runs once per client
and secret until then.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import string
from typing import TYPE_CHECKING

from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError

if TYPE_CHECKING:
    from s2s.issuer._clients import Client

__all__ = [
    "MIN_SECRET_BITS",
    "SecretVerifier",
    "dummy_check",
    "generate_secret",
    "hash_secret",
    "hash_secret_scrypt",
    "is_legacy_hash",
    "parse_secret_hash",
    "secret_entropy_bits",
    "verify_secret",
]

MIN_SECRET_BITS = 128
_FAST = "sha256"
# Domain separation: the digest of a client secret is never the digest of the same bytes elsewhere.
_DOMAIN = b"s2s.client-secret/1\0"
# scrypt N=2^15, r=8, p=1 (~32 MiB): only to check hashes written by earlier versions.
_SCRYPT_LOG_N = 15
_SCRYPT_R = 8
_SCRYPT_P = 1


def generate_secret() -> str:
    """A new client secret: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def secret_entropy_bits(secret: str) -> float:
    """A generous upper estimate of a secret's entropy: its length times log2 of the alphabet its
    characters come from (hex digits, base64url, or the printable classes it uses), capped by how
    few distinct characters it has. Refusing below :data:`MIN_SECRET_BITS` by this estimate refuses
    every short or low-variety secret; it cannot see that a long phrase is guessable."""
    if not secret:
        return 0.0
    chars = set(secret)
    if chars <= set(string.hexdigits):
        alphabet = 16
    elif chars <= set(string.ascii_letters + string.digits + "-_"):
        alphabet = 64
    else:
        alphabet = 95 if all(c.isascii() for c in chars) else 256
    per_char = min(math.log2(alphabet), math.log2(max(len(chars), 2)) * 1.5)
    return len(secret) * per_char


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _fast_digest(secret: str) -> bytes:
    return hashlib.sha256(_DOMAIN + secret.encode("utf-8", "surrogatepass")).digest()


def _scrypt(secret: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p + (1 << 20), dklen=32
    )


def hash_secret(secret: str) -> str:
    """``sha256$<digest>`` of a secret of at least :data:`MIN_SECRET_BITS` bits (else ConfigError)."""
    if secret_entropy_bits(secret) < MIN_SECRET_BITS:
        raise ConfigError(
            f"a client secret needs at least {MIN_SECRET_BITS} bits of entropy "
            "(e.g. 22+ random base64url characters); let s2s generate one"
        )
    return f"{_FAST}${_b64(_fast_digest(secret))}"


def hash_secret_scrypt(secret: str) -> str:
    """``scrypt$ln=15,r=8,p=1$<salt>$<hash>``: the format of earlier versions (tests, migrations)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, _SCRYPT_LOG_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt$ln={_SCRYPT_LOG_N},r={_SCRYPT_R},p={_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def is_legacy_hash(encoded: str) -> bool:
    """True for an ``scrypt$`` hash (slow to check; replaced after the next success)."""
    return encoded.startswith("scrypt$")


def parse_secret_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """``(log_n, r, p, salt, digest)``; a fast hash gives ``(0, 0, 0, b"", digest)``."""
    if encoded.startswith(f"{_FAST}$"):
        try:
            fast = _unb64(encoded[len(_FAST) + 1 :])
        except ValueError as exc:
            raise ConfigError("malformed secret hash") from exc
        if len(fast) != 32:
            raise ConfigError("malformed secret hash")
        return 0, 0, 0, b"", fast
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
    """Constant-time check of ``secret`` against a stored hash (fast or scrypt)."""
    log_n, r, p, salt, expected = parse_secret_hash(encoded)
    try:
        actual = _scrypt(secret, salt, log_n, r, p) if log_n else _fast_digest(secret)
    except (ValueError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(actual, expected)


def dummy_check(secret: str) -> bool:
    """The cost of a fast check without a client: for unknown ids and clients without a secret,
    so that their failures take as long as a wrong secret for a known id. Always False."""
    hmac.compare_digest(_fast_digest(secret), _DUMMY)
    return False


_DUMMY = secrets.token_bytes(32)


class SecretVerifier:
    """Checks client secrets: fast hashes at once, scrypt ones remembered after a success.

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

    def check(self, client: Client, secret: str) -> bool | None:
        """True or False when decided now (a fast hash, or a recent scrypt success); None when
        the slow scrypt check is needed (:meth:`verify_slow`, on a worker thread)."""
        if client.secret_hash is None:
            return dummy_check(secret)
        if not is_legacy_hash(client.secret_hash):
            return verify_secret(secret, client.secret_hash)
        return True if self.cached(client, secret) else None

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
        decided = self.check(client, secret)
        return self.verify_slow(client, secret) if decided is None else decided
