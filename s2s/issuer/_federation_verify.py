"""Verifying a federated client's external token with the verifier core, and matching it.

The external token goes through the same pieces as any token the verifier accepts: size limits
and the closed header policy (:func:`s2s.jose.parse_compact`), the asymmetric algorithm allowlist
(:class:`~s2s.jose.AlgorithmPolicy`: never ``none`` or ``HS*``), a key pinned to its algorithm
from the external issuer's JWKS source (:class:`~s2s.verify.SyncJWKSSource`: discovery or an
explicit URL, one deadline per refresh, stale-while-revalidate, a cooldown between refetches), the
claim rules (:class:`s2s.verify._claims.ClaimsPolicy`: ``exp``, ``nbf``, ``iat``, audience, maximum
age) and its typed refusals. What is federation's own: choosing the credentials by issuer (or
SPIFFE trust domain) before any I/O, refusing our own access tokens, file-backed key sets and
SPIFFE trust bundles, and matching the verified claims to one credential.

No I/O on the event loop: :meth:`FederationVerifier.authenticate` with ``io=False`` answers None
when the key is not already in a fresh key set; the endpoint then runs it again with ``io=True``
in a worker thread (or the whole request already runs in the issuer's pool).

Replay: an external token may be presented again while valid (kubelet and GitHub tokens are
reused by design); the damage is bounded by the credential's ``max_age`` (from ``iat``), the
token's ``exp`` and the audience pinned to this issuer, not by a ``jti`` store.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.issuer._assertion import InvalidAssertion
from s2s.issuer._federation import FederatedCredential
from s2s.issuer._settings import KUBERNETES_ACCOUNT_DIR
from s2s.issuer.errors import TemporarilyUnavailable
from s2s.jose import (
    VERIFIER_ALGORITHMS,
    AlgorithmPolicy,
    AlgorithmRejected,
    HeaderPolicy,
    JoseError,
    MissingKeyId,
    ParsedJWS,
    SignatureInvalid,
    TokenLimits,
    VerifyKey,
    b64url_decode,
    check_signature,
    loads_object,
    parse_compact,
)
from s2s.verify import (
    ExpiredToken,
    InvalidAudience,
    InvalidToken,
    JWKSError,
    KeysUnavailable,
    MissingClaim,
    SyncJWKSSource,
    TokenNotYetValid,
    TokenTooOld,
    UnknownKey,
    VerifierConfig,
)
from s2s.verify._claims import ClaimsPolicy
from s2s.verify._jwks import parse_jwks

if TYPE_CHECKING:
    from s2s.issuer._clients import Client

__all__ = ["FederationVerifier"]

log = logging.getLogger("s2s.issuer.federation")

MAX_EXTERNAL_TOKEN = 8192
_LIMITS = TokenLimits(max_token=MAX_EXTERNAL_TOKEN, max_header=2048, max_payload=6144, max_signature=1400)
# GitHub's tokens carry an x5t hint next to kid (allowed, never used); no member is a key source.
_HEADER = HeaderPolicy.closed(("x5t",))
# No typ (Kubernetes), JWT (GitHub, SPIFFE), JOSE (SPIFFE allows it). at+jwt is an access token.
_TOKEN_TYPES = frozenset({"", "jwt", "jose"})
_POLICY = AlgorithmPolicy.of(VERIFIER_ALGORITHMS)
_MAX_FILE = 256 * 1024
# A file-backed key set is never fetched: its VerifierConfig (claim rules only) names this URL.
_NOT_FETCHED = "https://jwks-file.invalid/"
_LEEWAY = 30.0
# How long a key file that went missing or unusable keeps its last keys: long enough for a writer
# that is not atomic (truncate, then write), short enough that deleting the file revokes them.
FILE_KEYS_GRACE = 10.0
# "No usable keys" is logged once per key source per this many seconds, not once per request: a
# stream of (possibly forged) tokens while a source is down must not flood the log.
_UNAVAILABLE_LOG_EVERY = 60.0
# The verifier's typed claim refusals, as reasons for the issuer's log.
_CLAIM_REFUSALS: dict[type[InvalidToken], str] = {
    ExpiredToken: "external token expired",
    TokenTooOld: "external token too old (older than the credential's max age)",
    InvalidAudience: "wrong audience (not the credential's)",
    TokenNotYetValid: "external token not valid yet",
    MissingClaim: "external token lacks a required claim",
}


_SEVERAL = "several audiences"  # the claims policy's description with single_audience


class _Keys(Protocol):
    def fresh_key(self, kid: str) -> VerifyKey | None: ...

    def get_key(self, kid: str) -> VerifyKey: ...


def _spiffe_bundle(doc: Any, cache_control: str | None) -> tuple[Any, str | None]:
    """A SPIFFE trust bundle as a JWKS of signature keys: its ``jwt-svid`` keys only (X.509 roots
    are for something else), and its ``spiffe_refresh_hint`` as the cache lifetime."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        return doc, cache_control
    keys = [{k: v for k, v in key.items() if k != "use"} for key in doc["keys"]
            if isinstance(key, dict) and key.get("use") == "jwt-svid"]  # fmt: skip
    hint = doc.get("spiffe_refresh_hint")
    if cache_control is None and isinstance(hint, int) and not isinstance(hint, bool) and hint > 0:
        cache_control = f"max-age={hint}"
    return {"keys": keys}, cache_control


class _BundleSource(SyncJWKSSource):
    """A SPIFFE bundle endpoint: the JWKS source, reading the bundle's ``jwt-svid`` keys."""

    def _install(self, doc: Any, cache_control: str | None) -> None:
        super()._install(*_spiffe_bundle(doc, cache_control))


class _FileKeys:
    """A JWKS (or SPIFFE bundle) file, read again whenever it may have changed.

    The change stamp is the file's identity, size and both times (device, inode, size, mtime,
    ctime): a same-size swap that keeps the mtime (``cp -p``, ``rsync -a``) still changes the
    ctime or the inode. A file that is missing, unreadable or not a usable JWKS keeps the last
    good keys for :data:`FILE_KEYS_GRACE` seconds after it was last seen good (a writer that is not
    atomic), then fails closed: removing or breaking the file revokes its keys.
    """

    def __init__(self, path: str, spiffe: bool, clock: Clock = system_clock) -> None:
        self._path = path
        self._spiffe = spiffe
        self._clock = clock
        self._stamp: tuple[int, ...] | None = (-1,)  # not read yet
        self._keys: Mapping[str, VerifyKey] = {}
        self._failing_since: float | None = None
        self._seen_good = clock.monotonic()
        self._lock = threading.Lock()

    def _load(self) -> Mapping[str, VerifyKey]:
        """The keys of the file as it is now (one warning per change of the file, and one when
        the grace ends, not one per request)."""
        try:
            stat = os.stat(self._path)
            stamp: tuple[int, ...] | None = (
                stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns,
            )  # fmt: skip
        except OSError:
            stamp = None
        if stamp == self._stamp and self._failing_since is None:
            self._seen_good = self._clock.monotonic()
            return self._keys
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                self._read(stamp)
            return self._current()

    def _read(self, stamp: tuple[int, ...] | None) -> None:
        """Read the file into the keys, or start (or go on with) the grace when it is unusable."""
        if stamp is None:
            self._failing(f"federation keys file {self._path} is not readable")
            return
        try:
            if stamp[2] > _MAX_FILE:
                raise JWKSError("file too large")
            with open(self._path, "rb") as handle:
                doc = json.loads(handle.read(_MAX_FILE + 1))
            if self._spiffe:
                doc, _ = _spiffe_bundle(doc, None)
            keys, dropped = parse_jwks(doc, _POLICY, 64)
        except (OSError, ValueError, RecursionError, JWKSError) as exc:
            reason = str(exc) if isinstance(exc, JWKSError) else type(exc).__name__
            self._failing(f"federation keys file {self._path} is not a usable JWKS ({reason})")
            return
        for reason in dropped:
            log.warning("federation keys file %s: key dropped (%s)", self._path, reason)
        self._keys = keys
        self._failing_since = None
        self._seen_good = self._clock.monotonic()

    def _failing(self, message: str) -> None:
        # The grace counts from the last time the file was seen good, not from when a request
        # first noticed: a file deleted an hour before the next request keeps nothing.
        if self._failing_since is None:
            self._failing_since = self._seen_good
        if self._keys:
            log.warning("%s; keeping the last keys for %g s at most", message, FILE_KEYS_GRACE)
        else:
            log.warning("%s", message)

    def _current(self) -> Mapping[str, VerifyKey]:
        since = self._failing_since
        if since is not None and self._keys and self._clock.monotonic() - since > FILE_KEYS_GRACE:
            log.error("federation keys file %s is still unusable: its keys are revoked", self._path)
            self._keys = {}
        return self._keys

    def fresh_key(self, kid: str) -> VerifyKey | None:
        return self._load().get(kid)

    def get_key(self, kid: str) -> VerifyKey:
        keys = self._load()
        key = keys.get(kid)
        if key is None:
            if not keys:
                raise KeysUnavailable(retry_after=30)
            raise UnknownKey()
        return key


def _allowed_token_file(path: str, dirs: tuple[str, ...]) -> bool:
    """Whether ``path``, symbolic links resolved, is inside one of ``dirs`` (resolved too)."""
    real = os.path.realpath(path)
    for directory in dirs:
        root = os.path.realpath(directory)
        if os.path.commonpath((real, root)) == root and real != root:
            return True
    return False


class _BearerFile(httpx.Auth):
    """``Authorization: Bearer <file content>``, read per request: the Kubernetes API server's
    JWKS endpoint wants the pod's own (rotated) service-account token. Only a file under the
    allowed directories is ever read (checked again per request: a link may be changed)."""

    def __init__(self, path: str, dirs: tuple[str, ...]) -> None:
        self._path = path
        self._dirs = dirs

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = ""
        if _allowed_token_file(self._path, self._dirs):
            try:
                with open(self._path, encoding="utf-8") as handle:
                    token = handle.read(MAX_EXTERNAL_TOKEN).strip()
            except OSError:
                pass
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _http_client(credential: FederatedCredential, token_dirs: tuple[str, ...]) -> httpx.Client:
    auth = None
    if credential.token_file is not None:
        # The registry names the file, the issuer's settings say where such files may be.
        if not _allowed_token_file(credential.token_file, token_dirs):
            raise ConfigError(
                f"token_file {credential.token_file} is not under the allowed token directories "
                "(S2S_FEDERATION_TOKEN_DIRS)"
            )
        auth = _BearerFile(credential.token_file, token_dirs)
    verify: ssl.SSLContext | bool = True
    if credential.ca_file is not None:
        verify = ssl.create_default_context(cafile=credential.ca_file)
    return httpx.Client(verify=verify, auth=auth, follow_redirects=False, trust_env=False)


class FederationVerifier:
    """Authenticates federated clients for one issuer (``issuer``: our identifier, the default
    audience). Thread-safe; key sources are shared by every credential naming the same one."""

    def __init__(
        self,
        issuer: str,
        *,
        clock: Clock = system_clock,
        leeway: float = _LEEWAY,
        token_dirs: tuple[str, ...] = (KUBERNETES_ACCOUNT_DIR,),
    ) -> None:
        self._issuer = issuer
        self._token_dirs = tuple(token_dirs)
        self._clock = clock
        self._leeway = leeway
        self._sources: dict[tuple[str, ...], _Keys] = {}
        self._clients: list[httpx.Client] = []
        self._policies: dict[FederatedCredential, ClaimsPolicy] = {}
        self._logged: dict[tuple[str, ...], float] = {}  # key source -> when it was last logged
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()  # its own: _source logs while holding _lock

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
            self._sources.clear()
        for client in clients:
            client.close()

    # -- the parts ---------------------------------------------------------------------------------

    def _source(self, credential: FederatedCredential) -> _Keys:
        key = credential.key_source()
        source = self._sources.get(key)
        if source is not None:
            return source
        with self._lock:
            source = self._sources.get(key)
            if source is None:
                try:
                    source = self._sources[key] = self._new_source(credential)
                except (ConfigError, OSError, ssl.SSLError) as exc:
                    # Ours to fix (a CA file that is missing, say), not the caller's: 503.
                    reason = exc.description if isinstance(exc, ConfigError) else type(exc).__name__
                    if self._should_log(key):
                        log.error("federation: cannot use the keys of %s: %s", credential.issuer, reason)
                    raise TemporarilyUnavailable("an external issuer's keys are unavailable") from None
        return source

    def _new_source(self, credential: FederatedCredential) -> _Keys:
        spiffe = credential.kind == "spiffe"
        if credential.jwks_file is not None:
            return _FileKeys(credential.jwks_file, spiffe, self._clock)
        config = VerifierConfig(
            issuer=credential.issuer, audiences=(self._issuer,), jwks_uri=credential.jwks_url
        )
        client = _http_client(credential, self._token_dirs)
        self._clients.append(client)
        kind = _BundleSource if spiffe else SyncJWKSSource
        return kind(config, lambda: client, self._clock)

    def _should_log(self, source: tuple[str, ...]) -> bool:
        """Whether the unavailability of ``source`` is due a log line (once per cooldown)."""
        now = self._clock.monotonic()
        with self._log_lock:
            last = self._logged.get(source)
            if last is not None and now - last < _UNAVAILABLE_LOG_EVERY:
                return False
            if len(self._logged) > 4096:
                self._logged.clear()
            self._logged[source] = now
            return True

    def _claims_policy(self, credential: FederatedCredential) -> ClaimsPolicy:
        policy = self._policies.get(credential)
        if policy is None:
            spiffe = credential.kind == "spiffe"
            config = VerifierConfig(
                issuer=credential.issuer,
                audiences=(credential.audience or self._issuer,),
                jwks_uri=credential.jwks_url or _NOT_FETCHED,
                leeway=self._leeway,
                # A JWT-SVID may have no iat: its age is bounded through exp instead (below).
                required_claims=("sub", "aud", "exp") if spiffe else ("iss", "sub", "aud", "exp", "iat"),
                max_token_age=None if spiffe else credential.max_age,
                token_types=tuple(_TOKEN_TYPES),
            )
            # Exactly the pinned audience: a token also minted for another service could be
            # replayed here by that service.
            policy = ClaimsPolicy(config, single_audience=True)
            with self._lock:
                if len(self._policies) > 4096:
                    self._policies.clear()
                self._policies[credential] = policy
        return policy

    # -- the check ---------------------------------------------------------------------------------

    def authenticate(self, token: str, client: Client, *, io: bool) -> FederatedCredential | None:
        """The credential of ``client`` that ``token`` proves, or :class:`InvalidAssertion` with
        the reason (never quoting the token). With ``io=False``: None when the key must be
        fetched first (call again with ``io=True`` off the event loop). The external issuer's
        keys being unavailable is ours to fix: :class:`TemporarilyUnavailable` (503)."""
        parsed, claims = self._parse(token)
        iss, sub = claims.get("iss"), claims.get("sub")
        candidates = [c for c in client.federated if c.trusts(iss, sub)]
        if not candidates:
            raise InvalidAssertion(self._untrusted(client, sub))
        # Credentials naming the same key source share one signature check.
        groups: dict[tuple[str, ...], list[FederatedCredential]] = {}
        for credential in candidates:
            groups.setdefault(credential.key_source(), []).append(credential)
        refusal: InvalidAssertion | None = None
        for group in groups.values():
            try:
                verified = self._signature(parsed, group[0], io=io)
            except InvalidAssertion as exc:
                refusal = exc
                continue
            if not verified:
                return None
            return self._match(group, claims)
        assert refusal is not None
        raise refusal

    def _parse(self, token: str) -> tuple[ParsedJWS, dict[str, Any]]:
        try:
            parsed = parse_compact(token, limits=_LIMITS, policy=_HEADER)
            claims = loads_object(parsed.payload)
        except MissingKeyId:
            raise InvalidAssertion("federated: external token has no kid") from None
        except AlgorithmRejected:
            raise InvalidAssertion("federated: algorithm not allowed (asymmetric only)") from None
        except (JoseError, ValueError, UnicodeDecodeError, RecursionError):
            # alg none comes with an empty signature, which the parser refuses first: say so.
            if _header_alg(token) not in _POLICY.algorithms:
                raise InvalidAssertion("federated: algorithm not allowed (asymmetric only)") from None
            raise InvalidAssertion("federated: external token is not a well-formed JWT") from None
        # Our own access tokens are never client credentials: they would let any token holder
        # mint itself new tokens, for ever.
        if parsed.typ == "at+jwt" or claims.get("iss") == self._issuer:
            raise InvalidAssertion("federated: our own access token presented as an assertion")
        if (parsed.typ or "") not in _TOKEN_TYPES:
            raise InvalidAssertion("federated: external token typ names another kind of JWT")
        # Pinning as the verifier does: none and HS* are refused before any key is looked up.
        if parsed.alg not in _POLICY.algorithms:
            raise InvalidAssertion("federated: algorithm not allowed (asymmetric only)")
        return parsed, claims

    @staticmethod
    def _untrusted(client: Client, sub: Any) -> str:
        if (
            isinstance(sub, str)
            and sub.startswith("spiffe://")
            and any(c.kind == "spiffe" for c in client.federated)
        ):
            return "federated: JWT-SVID from another trust domain"
        return "federated: untrusted issuer (no credential of this client trusts it)"

    def _signature(self, parsed: ParsedJWS, credential: FederatedCredential, *, io: bool) -> bool:
        source = self._source(credential)
        kid = parsed.kid
        if kid is None:  # the header policy requires it; explicit for the type
            raise InvalidAssertion("federated: external token has no kid")
        key = source.fresh_key(kid)
        if key is None:
            if not io:
                return False
            try:
                key = source.get_key(kid)
            except UnknownKey:
                raise InvalidAssertion("federated: unknown key (kid not in the issuer's keys)") from None
            except KeysUnavailable:
                if self._should_log(credential.key_source()):
                    log.warning("federation: no usable keys for %s", credential.issuer)
                raise TemporarilyUnavailable("an external issuer's keys are unavailable") from None
        try:
            check_signature(parsed, key)
        except AlgorithmRejected:
            raise InvalidAssertion("federated: algorithm is not the one of the external key") from None
        except SignatureInvalid:
            raise InvalidAssertion("federated: bad signature") from None
        return True

    def _match(self, group: list[FederatedCredential], claims: dict[str, Any]) -> FederatedCredential:
        """The first credential whose identity and claim rules the verified token meets. The
        reason refused: a credential's claim rule when its identity matched, else the identity."""
        now = self._clock.now()
        identity: str | None = None
        for credential in group:
            mismatch = credential.mismatch(claims)
            if mismatch is not None:
                identity = identity or mismatch
                continue
            self._check_claims(credential, claims, now)
            return credential
        raise InvalidAssertion(f"federated: {identity}")

    def _check_claims(self, credential: FederatedCredential, claims: dict[str, Any], now: float) -> None:
        try:
            self._claims_policy(credential).check(claims, now)
        except InvalidToken as exc:
            reason = _CLAIM_REFUSALS.get(type(exc)) or f"external token refused ({exc.description})"
            if isinstance(exc, InvalidAudience) and exc.description == _SEVERAL:
                reason = "wrong audience (several audiences: the credential's alone is required)"
            raise InvalidAssertion(f"federated: {reason}") from None
        if credential.kind == "spiffe":
            # No iat to count from: a JWT-SVID may not outlive max_age from now either.
            iat, exp = claims.get("iat"), claims["exp"]
            if isinstance(iat, int | float) and not isinstance(iat, bool):
                if now - iat > credential.max_age + self._leeway:
                    raise InvalidAssertion(_too_old(credential))
            elif exp - now > credential.max_age + self._leeway:
                raise InvalidAssertion(_too_old(credential))


def _too_old(credential: FederatedCredential) -> str:
    return f"federated: {_CLAIM_REFUSALS[TokenTooOld]}"


def _header_alg(token: str) -> Any:
    """The ``alg`` of a token's header, read only to name a refusal (None when unreadable)."""
    try:
        return loads_object(b64url_decode(token.split(".", 1)[0][:2048])).get("alg")
    except (JoseError, ValueError, UnicodeDecodeError, RecursionError, AttributeError):
        return None
