"""Prometheus metrics for the issuer, the verifiers and the token clients (``prometheus_client``).

One :class:`PrometheusObserver` owns its metric families in its own ``CollectorRegistry`` (an app
instance each, so two apps in one process, or two tests, never share counters). The names and
their meaning are listed in docs/operate.md.

Label values are bounded: client ids of registered clients (never a claimed one), configured
issuers and audiences, refusal *types* and fixed reason codes. Never a token, a secret, a path.

Times are exported as Unix timestamps (``*_timestamp_seconds``) rather than ages, so they stay
right between scrapes and in multi-process mode (``time() - metric`` in PromQL is the age).

Multi-process (``s2s serve --workers N``): ``s2s serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory before the workers start; every worker then writes its samples there and a scrape
of any worker (:func:`render`) adds up the counters and histograms of all of them; gauges take
the maximum (timestamps) or the minimum (readiness) over the live workers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from s2s.keys._rotation import rotation_due
from s2s.observe._observer import Observer
from s2s.observe._reasons import reason_code

if TYPE_CHECKING:
    from s2s.keys import KeySet, RotationPolicy

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_ENV",
    "PrometheusObserver",
    "WatchedVerifier",
    "multiprocess",
    "multiprocess_registry",
    "reason_code",
    "render",
    "serve_metrics",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_STATES = ("next", "current", "previous")


def multiprocess() -> bool:
    """Whether this process writes its samples for a multi-process scrape."""
    return bool(os.environ.get(MULTIPROC_ENV))


class PrometheusObserver(Observer):
    """Counts the events of :class:`~s2s.observe.Observer` in ``registry`` (a new one by default).

    ``watch`` adds live views read at scrape time (a verifier's cache size, its keys' age).
    """

    __slots__ = (
        "_auth_failures",
        "_cache_hits",
        "_cache_misses",
        "_client_events",
        "_client_requests",
        "_client_retries",
        "_client_tokens",
        "_dependency",
        "_hit_children",
        "_issued",
        "_issued_children",
        "_jwks_expires",
        "_jwks_fetched_at",
        "_jwks_fetches",
        "_key_activated",
        "_key_created",
        "_key_events",
        "_keyset_loaded",
        "_lock",
        "_msal_calls",
        "_msal_seconds",
        "_rate_limited",
        "_ready",
        "_refusals",
        "_reload_failures",
        "_reloads",
        "_request_seconds",
        "_rotation_due",
        "_unknown_kid",
        "_verifications",
        "_watched",
        "registry",
    )

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        # -- issuer
        self._issued = Counter(
            "s2s_issuer_tokens_issued", "Access tokens issued.", ["client_id", "audience"], registry=r
        )
        self._refusals = Counter(
            "s2s_issuer_token_refusals",
            "Token requests refused, by OAuth error code and reason (error type or reason code).",
            ["error", "reason"],
            registry=r,
        )
        self._auth_failures = Counter(
            "s2s_issuer_client_auth_failures",
            "Failed client authentications, by method and reason code.",
            ["method", "reason"],
            registry=r,
        )
        self._rate_limited = Counter(
            "s2s_issuer_rate_limited",
            "Requests answered slow_down, by budget (failures: failed authentications of one client "
            "id and address; issuance: a client's own token budget).",
            ["budget"],
            registry=r,
        )
        self._request_seconds = Histogram(
            "s2s_issuer_token_request_duration_seconds",
            "Token endpoint latency, from the request body read to the response.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._dependency = Counter(
            "s2s_issuer_dependency_errors",
            "Token requests a dependency failed (state: replay/rate state; registry; signer).",
            ["dependency"],
            registry=r,
        )
        self._reloads = Counter("s2s_issuer_keyset_reloads", "Keysets loaded from the key store.", registry=r)
        self._reload_failures = Counter(
            "s2s_issuer_keyset_reload_failures",
            "Keyset reloads that failed (the last good keys stay in use), by reason.",
            ["reason"],
            registry=r,
        )
        self._keyset_loaded = Gauge(
            "s2s_issuer_keyset_loaded_timestamp_seconds",
            "When the keyset in use was last loaded from the key store.",
            registry=r,
            multiprocess_mode="max",
        )
        self._key_created = Gauge(
            "s2s_issuer_key_created_timestamp_seconds",
            "When the key in each state was created.",
            ["state"],
            registry=r,
            multiprocess_mode="max",
        )
        self._key_activated = Gauge(
            "s2s_issuer_key_activated_timestamp_seconds",
            "When the current key started signing.",
            registry=r,
            multiprocess_mode="max",
        )
        self._rotation_due = Gauge(
            "s2s_issuer_rotation_due_timestamp_seconds",
            "When the schedule rotates the current key (0: no schedule).",
            registry=r,
            multiprocess_mode="max",
        )
        self._ready = Gauge(
            "s2s_issuer_ready",
            "1 when the issuer can sign (a current key, within its use); 0 otherwise.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self._key_events = Counter(
            "s2s_issuer_key_events", "Key lifecycle events, by action and who.", ["action", "who"], registry=r
        )
        self._client_events = Counter(
            "s2s_issuer_client_events",
            "Client registry changes, by action and who.",
            ["action", "who"],
            registry=r,
        )
        # -- verifier
        self._verifications = Counter(
            "s2s_verifier_verifications",
            "Verifications that ran the checks, by configured issuer and result (ok or the refusal "
            "type); tokens served by the verified-token cache count in s2s_verifier_cache_hits.",
            ["issuer", "result"],
            registry=r,
        )
        self._cache_hits = Counter(
            "s2s_verifier_cache_hits",
            "Tokens accepted from the verified-token cache (no checks ran).",
            ["issuer"],
            registry=r,
        )
        self._cache_misses = Counter(
            "s2s_verifier_cache_misses",
            "Verifications that ran the checks (not in the verified-token cache).",
            ["issuer"],
            registry=r,
        )
        self._jwks_fetches = Counter(
            "s2s_verifier_jwks_fetches",
            "JWKS refreshes, by issuer and result.",
            ["issuer", "result"],
            registry=r,
        )
        self._jwks_fetched_at = Gauge(
            "s2s_verifier_jwks_fetched_timestamp_seconds",
            "When the keys in use were fetched.",
            ["issuer"],
            registry=r,
            multiprocess_mode="max",
        )
        self._jwks_expires = Gauge(
            "s2s_verifier_jwks_expires_timestamp_seconds",
            "When the keys in use go stale (their TTL ends; they are still served for a while).",
            ["issuer"],
            registry=r,
            multiprocess_mode="max",
        )
        self._unknown_kid = Counter(
            "s2s_verifier_jwks_unknown_kid",
            "Tokens naming a kid the keys did not have (a refetch is attempted).",
            ["issuer"],
            registry=r,
        )
        # -- token clients and MSAL
        self._client_tokens = Counter(
            "s2s_client_tokens",
            "Token client answers, by outcome (cache, fetched, stale, error).",
            ["client_id", "outcome"],
            registry=r,
        )
        self._client_requests = Counter(
            "s2s_client_requests",
            "HTTP requests of token clients to the token endpoint, by outcome.",
            ["client_id", "outcome"],
            registry=r,
        )
        self._client_retries = Counter(
            "s2s_client_retries",
            "Token requests retried after a transient failure.",
            ["client_id"],
            registry=r,
        )
        self._msal_calls = Counter(
            "s2s_msal_calls", "Calls into MSAL, by flow and outcome.", ["flow", "outcome"], registry=r
        )
        self._msal_seconds = Histogram(
            "s2s_msal_call_duration_seconds",
            "MSAL call latency, by flow.",
            ["flow"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # The hot path (a verification) uses its label children, cached: labels() costs a lock.
        self._hit_children: dict[str, Any] = {}
        self._issued_children: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._watched: _Watched | None = None

    # -- live views ------------------------------------------------------------------------------
    def watch(self, verifier: WatchedVerifier) -> None:
        """Add a verifier's live view, read at scrape time: the age of its keys, whether they are
        stale, its cache size. Only meaningful in the process that answers the scrape."""
        with self._lock:
            if self._watched is None:
                self._watched = _Watched()
                self.registry.register(self._watched)
            if verifier not in self._watched.verifiers:
                self._watched.verifiers.append(verifier)

    def render(self) -> tuple[bytes, str]:
        """The exposition of this observer's registry (every worker's, in multi-process mode)."""
        return render(self.registry, () if self._watched is None else (self._watched,))

    # -- issuer ----------------------------------------------------------------------------------
    def token_issued(
        self,
        client_id: str,
        audience: str,
        scopes: Sequence[str],
        *,
        jti: str,
        kid: str,
        expires_at: int,
        source: str | None,
    ) -> None:
        child = self._issued_children.get((client_id, audience))
        if child is None:
            with self._lock:
                child = self._issued_children.setdefault(
                    (client_id, audience), self._issued.labels(client_id, audience)
                )
        child.inc()

    def token_refused(self, error: str, reason: str) -> None:
        self._refusals.labels(error, reason).inc()

    def client_auth_failed(self, client_id: str, method: str, reason: str, source: str | None) -> None:
        self._auth_failures.labels(method, reason_code(method, reason)).inc()

    def rate_limited(self, client_id: str, budget: str, source: str | None) -> None:
        self._rate_limited.labels(budget).inc()

    def token_request(self, status: int, seconds: float) -> None:
        self._request_seconds.observe(seconds)

    def dependency_error(self, dependency: str) -> None:
        self._dependency.labels(dependency).inc()

    def keyset_loaded(self, keyset: object, loaded_at: float, policy: object) -> None:
        self._reloads.inc()
        self._keyset_loaded.set(loaded_at)
        ks: KeySet = keyset  # type: ignore[assignment]
        newest: dict[str, float] = {}
        for key in ks:
            state = key.state.value
            if state in _STATES:
                newest[state] = max(newest.get(state, 0.0), key.created_at)
        for state in _STATES:
            # A state with no key reads 0 (a next key that was promoted, say), never a stale time.
            self._key_created.labels(state).set(newest.get(state, 0.0))
        current, rules = ks.current, cast("RotationPolicy", policy)
        if current is not None:
            activated = current.activated_at if current.activated_at is not None else current.created_at
            self._key_activated.set(activated)
            # As the schedule decides (0: no schedule).
            self._rotation_due.set(rotation_due(ks, rules) or 0.0)

    def keyset_reload_failed(self, reason: str) -> None:
        self._reload_failures.labels(reason).inc()

    def readiness(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def key_changed(self, action: str, kid: str, who: str, alg: str | None = None) -> None:
        self._key_events.labels(action, who).inc()

    def client_changed(self, action: str, client_id: str, who: str) -> None:
        self._client_events.labels(action, who).inc()

    # -- verifier --------------------------------------------------------------------------------
    def verified(self, issuer: str, refusal: str | None, cached: bool) -> None:
        if cached:  # the hot path: one increment
            child = self._hit_children.get(issuer)
            if child is None:
                with self._lock:
                    child = self._hit_children.setdefault(issuer, self._cache_hits.labels(issuer))
            child.inc()
            return
        self._verifications.labels(issuer, refusal or "ok").inc()
        self._cache_misses.labels(issuer).inc()

    def jwks_fetched(
        self, issuer: str, ok: bool, seconds: float, fetched_at: float, expires_at: float
    ) -> None:
        self._jwks_fetches.labels(issuer, "ok" if ok else "failed").inc()
        if ok:
            self._jwks_fetched_at.labels(issuer).set(fetched_at)
            self._jwks_expires.labels(issuer).set(expires_at)

    def jwks_unknown_kid(self, issuer: str) -> None:
        self._unknown_kid.labels(issuer).inc()

    # -- token clients and MSAL ------------------------------------------------------------------
    def client_token(self, client_id: str, outcome: str) -> None:
        self._client_tokens.labels(client_id, outcome).inc()

    def client_request(self, client_id: str, outcome: str, seconds: float) -> None:
        self._client_requests.labels(client_id, outcome).inc()

    def client_retry(self, client_id: str) -> None:
        self._client_retries.labels(client_id).inc()

    def msal_call(self, flow: str, outcome: str, seconds: float) -> None:
        self._msal_calls.labels(flow, outcome).inc()
        self._msal_seconds.labels(flow).observe(seconds)


class WatchedVerifier(Protocol):
    """What :meth:`PrometheusObserver.watch` reads (``TokenVerifier``, ``SyncTokenVerifier``)."""

    @property
    def cached_tokens(self) -> int: ...

    def describe(self) -> list[dict[str, Any]]: ...


class _Watched(Collector):
    """Scrape-time gauges of watched verifiers: key age and staleness per configured issuer, and
    the verified-token cache size."""

    def __init__(self) -> None:
        self.verifiers: list[WatchedVerifier] = []

    def collect(self) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "s2s_verifier_jwks_age_seconds", "Age of the keys in use, per issuer.", labels=["issuer"]
        )
        stale = GaugeMetricFamily(
            "s2s_verifier_jwks_stale",
            "1 when the keys in use are past their TTL or there are none (a refresh is failing).",
            labels=["issuer"],
        )
        size = GaugeMetricFamily("s2s_verifier_cache_size", "Tokens in the verified-token caches.")
        cached = 0
        for verifier in list(self.verifiers):
            cached += verifier.cached_tokens
            for item in verifier.describe():
                issuer = str(item["issuer"])
                if item.get("keys_age_seconds") is not None:
                    age.add_metric([issuer], float(item["keys_age_seconds"]))
                stale.add_metric([issuer], 0.0 if item.get("keys_fresh") else 1.0)
        size.add_metric([], float(cached))
        yield age
        yield stale
        yield size

    def describe(self) -> Iterator[Metric]:
        return iter(())


def multiprocess_registry() -> CollectorRegistry:
    """A registry reading every worker's samples from ``PROMETHEUS_MULTIPROC_DIR`` at each scrape."""
    from prometheus_client import multiprocess as mp  # noqa: PLC0415 - only with several workers

    registry = CollectorRegistry()
    mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def serve_metrics(registry: CollectorRegistry, host: str, port: int, token: str | None = None) -> _Stoppable:
    """Serve ``registry`` over HTTP on ``host:port`` (a daemon thread); ``shutdown()`` stops it.
    With ``token`` every request must send ``Authorization: Bearer <token>`` (else 401)."""
    import socket  # noqa: PLC0415 - only for a metrics port
    from socketserver import ThreadingMixIn  # noqa: PLC0415 - same
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server  # noqa: PLC0415

    from prometheus_client import make_wsgi_app  # noqa: PLC0415 - same

    from s2s.observe._access import bearer_matches  # noqa: PLC0415 - same

    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if token is not None and not bearer_matches(environ.get("HTTP_AUTHORIZATION", ""), token):
            headers = [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                ("WWW-Authenticate", 'Bearer realm="metrics"'),
            ]
            start_response("401 Unauthorized", headers)
            return [b'{"error":"unauthorized"}']
        return cast("Iterable[bytes]", metrics_app(environ, start_response))

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True
        allow_reuse_address = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # a scrape every few seconds is not worth a log line

    server = make_server(host, port, app, Server, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="s2s-metrics", daemon=True).start()
    return server


class _Stoppable(Protocol):
    def shutdown(self) -> None: ...


def render(registry: CollectorRegistry, live: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """``registry`` in the Prometheus text format. In multi-process mode the samples of every
    worker (read from ``PROMETHEUS_MULTIPROC_DIR``) replace this process's own; ``live``
    collectors (scrape-time gauges of this process) are added to them."""
    if not multiprocess():
        return generate_latest(registry), CONTENT_TYPE
    combined = multiprocess_registry()
    for collector in live:
        combined.register(collector)
    return generate_latest(combined), CONTENT_TYPE
