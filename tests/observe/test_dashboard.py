"""docs/grafana/s2s.json and the alert rules of docs/operate.md name only metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from litestar import Litestar
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.issuer import InMemoryClientRegistry
from s2s.keys import KeyState, SigningKey, generate_key
from s2s.litestar import S2SAuthPlugin
from s2s.observe.litestar import metrics_route
from s2s.observe.prometheus import PrometheusObserver
from s2s.verify import TokenVerifier, VerifierConfig
from tests.issuer.helpers import ISSUER, SECRET, basic
from tests.observe.conftest import make_app
from tests.observe.helpers import metric_names, scrape
from tests.observe.test_verifier_client_metrics import jwks_client, mint, orders

DOCS = Path(__file__).resolve().parents[2] / "docs"
METRIC = re.compile(r"\b(s2s_[a-z0-9_]+)")


def live_names(registry: InMemoryClientRegistry, clock: FakeClock) -> set[str]:
    """Metric names from live renders: the issuer app after requests, and a plugin app."""
    issuer = make_app(registry, clock)
    with TestClient(issuer, base_url=ISSUER) as tc:
        tc.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic("svc", SECRET)},
        )
        names = metric_names(scrape(tc).text)
    key: SigningKey = generate_key("ES256", now=clock.now(), state=KeyState.CURRENT)
    metrics = PrometheusObserver()
    verifier = TokenVerifier(
        VerifierConfig.for_s2s("https://issuer.test", "orders-api"),
        http_client=jwks_client(key, [False]),
        clock=clock,
        observer=metrics,
    )
    app = Litestar(
        [orders, metrics_route(observer=metrics, watch=[verifier])], plugins=[S2SAuthPlugin(verifier)]
    )
    with TestClient(app) as tc:
        tc.get("/orders", headers={"Authorization": f"Bearer {mint(key, clock)}"})
        names |= metric_names(tc.get("/metrics").text)
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DOCS / "grafana" / "s2s.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_expressions() -> list[str]:
    page = (DOCS / "operate.md").read_text()
    block = next(b for b in re.findall(r"^```yaml\n(.*?)^```$", page, re.S | re.M) if "groups:" in b)
    rules = yaml.safe_load(block)["groups"][0]["rules"]
    return [rule["expr"] for rule in rules]


def test_every_dashboard_query_and_alert_names_an_existing_metric(
    registry: InMemoryClientRegistry, clock: FakeClock
) -> None:
    names = live_names(registry, clock)
    queries = dashboard_queries()
    alerts = alert_expressions()
    assert len(queries) >= 15 and len(alerts) >= 7
    for expr in [*queries, *alerts]:
        used = METRIC.findall(expr)
        assert used, expr
        missing = [m for m in used if m not in names]
        assert not missing, f"{missing} in {expr!r}"
    # The alerts the issue asks for are all there.
    rules = {r.split(":")[0] for r in re.findall(r"alert: (\w+)", (DOCS / "operate.md").read_text())}
    assert {
        "S2SSigningFailing",
        "S2SKeysetStale",
        "S2SRotationOverdue",
        "S2SRefusalSpike",
        "S2SJwksStaleAtVerifier",
    } <= rules


def test_the_check_fails_on_a_misspelt_metric(registry: InMemoryClientRegistry, clock: FakeClock) -> None:
    names = live_names(registry, clock)
    assert "s2s_issuer_tokens_issued_total" in names
    assert "s2s_issuer_token_issued_total" not in names  # what a typo in a query would name


def test_the_operate_page_documents_every_metric(registry: InMemoryClientRegistry, clock: FakeClock) -> None:
    page = (DOCS / "operate.md").read_text()
    families = {n.removesuffix("_total") for n in live_names(registry, clock)}
    families = {n for n in families if not n.endswith(("_bucket", "_count", "_sum", "_created"))}
    undocumented = sorted(n for n in families if n not in page)
    assert not undocumented
