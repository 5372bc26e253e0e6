"""A ``/metrics`` route for any Litestar app (one line; the plugin has ``plugin.metrics_route()``).

    plugin = S2SAuthPlugin(VerifierConfig(...))
    app = Litestar([hello, plugin.metrics_route()], plugins=[plugin])

By default the route serves the process-wide :func:`default_metrics` (prometheus_client's global
``REGISTRY``, so the app's own metrics appear beside s2s's), subscribed to :data:`s2s.observe.HUB`:
every verifier and token client built without an observer of its own counts there. The route is
excluded from the plugin's bearer authentication (``exclude_opt_key``): a scraper has no token; keep
it on an internal network (its labels are bounded: issuers, refusal types, client ids).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from s2s.observe import subscribe
from s2s.observe.prometheus import PrometheusObserver, WatchedVerifier

__all__ = ["default_metrics", "metrics_route"]

_default: PrometheusObserver | None = None
_lock = threading.Lock()


def default_metrics() -> PrometheusObserver:
    """The process-wide metrics: created once, on prometheus_client's global registry."""
    global _default  # noqa: PLW0603 - one per process, like the registry it writes to
    with _lock:
        if _default is None:
            from prometheus_client import REGISTRY  # noqa: PLC0415 - the global registry, by name

            _default = PrometheusObserver(REGISTRY)
            subscribe(_default)
        return _default


def metrics_route(
    path: str = "/metrics",
    *,
    observer: PrometheusObserver | None = None,
    watch: Iterable[WatchedVerifier] = (),
    exclude_opt_key: str = "exclude_from_auth",
) -> HTTPRouteHandler:
    """A ``GET path`` handler serving ``observer`` (default :func:`default_metrics`); ``watch``:
    verifiers whose keys' age, staleness and cache size are read at each scrape."""
    metrics = observer if observer is not None else default_metrics()
    for verifier in watch:
        metrics.watch(verifier)

    @get(path, include_in_schema=False, opt={exclude_opt_key: True}, sync_to_thread=False)
    def serve_metrics() -> Response[bytes]:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    handler: HTTPRouteHandler = serve_metrics
    return handler
