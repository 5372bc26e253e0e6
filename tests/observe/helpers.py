"""Reading a Prometheus exposition in the observe tests (with prometheus_client's own parser)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["METRICS_TOKEN", "metric_names", "sample", "samples", "scrape"]

# The issuer's /metrics answers loopback peers only unless a token is set, and Litestar's
# TestClient reports its peer as "testclient": the test apps set this token and scrape with it.
METRICS_TOKEN = "test-metrics-token-0123456789"


def scrape(tc: Any, path: str = "/metrics") -> httpx.Response:
    """``GET /metrics`` the way a configured Prometheus does (with the bearer token)."""
    response: httpx.Response = tc.get(path, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    return response


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def metric_names(text: str) -> set[str]:
    """Every sample name a query may use (``_total``, ``_bucket``, ``_count``... included) and
    every family name."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names
