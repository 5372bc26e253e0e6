"""The observer seam: fan-out to late subscribers, no-op by default, spans free without tracing."""

from __future__ import annotations

import subprocess
import sys

from s2s.observe import HUB, NULL_SPAN, Fanout, Observer


class Recorder(Observer):
    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def verified(self, issuer: str, refusal: str | None, cached: bool) -> None:
        self.events.append(("verified", issuer, str(refusal), str(cached)))

    def key_changed(self, action: str, kid: str, who: str, alg: str | None = None) -> None:
        self.events.append(("key", action, kid, who))


def test_a_subscriber_added_later_to_the_hub_reaches_every_fanout_over_it() -> None:
    app_observer = Fanout([HUB, Observer()])
    app_observer.verified("iss", None, True)  # nobody handles it yet
    late = Recorder()
    HUB.subscribe(late)
    try:
        app_observer.verified("iss", "ExpiredToken", False)
        app_observer.key_changed("rotated", "kid-1", "schedule", "ES256")
        app_observer.token_request(200, 0.01)  # not handled by the recorder: skipped
    finally:
        HUB.unsubscribe(late)
    app_observer.verified("iss", None, False)
    assert late.events == [
        ("verified", "iss", "ExpiredToken", "False"),
        ("key", "rotated", "kid-1", "schedule"),
    ]


def test_nested_fanouts_deliver_once_per_subscription() -> None:
    inner, outer_only = Recorder(), Recorder()
    fan = Fanout([Fanout([inner]), outer_only])
    fan.verified("a", None, True)
    assert inner.events == outer_only.events == [("verified", "a", "None", "True")]


def test_spans_cost_nothing_until_a_tracing_observer_class_exists() -> None:
    code = (
        "from s2s.observe import HUB, NULL_SPAN, Fanout\n"
        "import s2s.observe.prometheus\n"
        "print(Fanout([HUB]).span('s2s.token', a=1) is NULL_SPAN, HUB.span('x') is NULL_SPAN)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]
    assert Observer().span("x") is NULL_SPAN
