"""Counters for the issuer, rendered in the Prometheus text format."""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["IssuerMetrics"]


class IssuerMetrics:
    def __init__(self) -> None:
        self.tokens_issued = 0
        self.errors: Counter[str] = Counter()
        self.keyset_reloads = 0
        self.keyset_reload_failures = 0
        self.keys_ready = False
        self._lock = threading.Lock()

    def issued(self) -> None:
        self.tokens_issued += 1

    def error(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def render(self) -> str:
        lines = [
            "# HELP s2s_tokens_issued_total Access tokens issued.",
            "# TYPE s2s_tokens_issued_total counter",
            f"s2s_tokens_issued_total {self.tokens_issued}",
            "# HELP s2s_token_errors_total Token requests refused, by OAuth error code.",
            "# TYPE s2s_token_errors_total counter",
        ]
        with self._lock:
            errors = sorted(self.errors.items())
        lines += [f's2s_token_errors_total{{error="{code}"}} {n}' for code, n in errors]
        lines += [
            "# HELP s2s_keyset_reloads_total Successful keyset loads from the key store.",
            "# TYPE s2s_keyset_reloads_total counter",
            f"s2s_keyset_reloads_total {self.keyset_reloads}",
            "# HELP s2s_keyset_reload_failures_total Failed keyset loads (the last good keys stay in use).",
            "# TYPE s2s_keyset_reload_failures_total counter",
            f"s2s_keyset_reload_failures_total {self.keyset_reload_failures}",
            "# HELP s2s_keys_ready 1 when a current signing key is loaded.",
            "# TYPE s2s_keys_ready gauge",
            f"s2s_keys_ready {int(self.keys_ready)}",
        ]
        return "\n".join(lines) + "\n"
