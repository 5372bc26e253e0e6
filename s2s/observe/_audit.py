"""The audit trail: one JSON line per event on the ``s2s.audit`` logger, and JSON logs for all of s2s.

Schema (version 1, documented in docs/operate.md): every event has ``v`` (1), ``ts`` (UTC,
RFC 3339 with milliseconds), ``event``, ``host``; then per event:

=========================  ===============================================================
``token.issued``           ``client_id``, ``audience``, ``scopes``, ``jti``, ``kid``, ``exp``, ``source``
``client.auth_failed``     ``client_id`` (claimed), ``method``, ``reason``, ``source``, ``suppressed``
``token.rate_limited``     ``client_id``, ``budget``, ``source``, ``suppressed``
``key.<action>``           ``kid``, ``alg``, ``who``  (generated, rotated, revoked, pruned)
``client.<action>``        ``client_id``, ``who``     (registered, changed, removed, secret_rotated)
=========================  ===============================================================

Nothing else is ever written: no token, secret, assertion or key material (the core passes none).

A flood cannot turn into a flood of lines: ``client.auth_failed`` events are written at most
:data:`AUTH_FAILED_PER_SECOND` a second and ``token.rate_limited`` ones :data:`RATE_LIMITED_PER_SECOND`,
``suppressed`` counting those of that kind left out since the last one written.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from s2s._env import EnvReader
from s2s.clock import Clock, system_clock
from s2s.observe._observer import Observer

__all__ = ["AUDIT_LOGGER", "AuditLog", "JsonFormatter", "audit_file", "configure_logging", "log_format"]

AUDIT_LOGGER = "s2s.audit"
SCHEMA_VERSION = 1
_MAX_CLAIMED = 128
RATE_LIMITED_PER_SECOND = 10
AUTH_FAILED_PER_SECOND = 100
# The attribute of a log record that holds an audit event (for JsonFormatter).
_EVENT_ATTR = "s2s_event"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog(Observer):
    """Writes the audit events of :class:`~s2s.observe.Observer` to the ``s2s.audit`` logger (INFO).

    The JSON line is the record's message, so any handler writes it as is; the event is also on
    the record as ``s2s_event`` for handlers that want the fields.
    """

    __slots__ = ("_clock", "_failed", "_host", "_limited", "_log")

    def __init__(self, *, clock: Clock = system_clock, host: str | None = None) -> None:
        self._log = logging.getLogger(AUDIT_LOGGER)
        self._clock = clock
        self._host = host or socket.gethostname()
        self._failed = _Throttle(AUTH_FAILED_PER_SECOND)
        self._limited = _Throttle(RATE_LIMITED_PER_SECOND)

    def _emit(self, event: str, fields: Mapping[str, Any]) -> None:
        record = {"v": SCHEMA_VERSION, "ts": _iso(self._clock.now()), "event": event, "host": self._host}
        record.update(fields)
        self._log.info("%s", json.dumps(record, separators=(",", ":")), extra={_EVENT_ATTR: record})

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
        if not self._log.isEnabledFor(logging.INFO):  # nothing built for nobody
            return
        self._emit(
            "token.issued",
            {
                "client_id": client_id,
                "audience": audience,
                "scopes": list(scopes),
                "jti": jti,
                "kid": kid,
                "exp": expires_at,
                "source": source,
            },
        )

    def client_auth_failed(self, client_id: str, method: str, reason: str, source: str | None) -> None:
        if not self._log.isEnabledFor(logging.INFO):  # nothing built for nobody
            return
        suppressed = self._failed.admit(self._clock.monotonic())
        if suppressed is None:
            return
        fields = {"client_id": client_id[:_MAX_CLAIMED], "method": method, "reason": reason, "source": source}
        self._emit("client.auth_failed", {**fields, "suppressed": suppressed})

    def rate_limited(self, client_id: str, budget: str, source: str | None) -> None:
        if not self._log.isEnabledFor(logging.INFO):  # nothing built for nobody
            return
        suppressed = self._limited.admit(self._clock.monotonic())
        if suppressed is None:
            return
        self._emit(
            "token.rate_limited",
            {
                "client_id": client_id[:_MAX_CLAIMED],
                "budget": budget,
                "source": source,
                "suppressed": suppressed,
            },
        )

    def key_changed(self, action: str, kid: str, who: str, alg: str | None = None) -> None:
        if not self._log.isEnabledFor(logging.INFO):  # nothing built for nobody
            return
        self._emit(f"key.{action}", {"kid": kid, "alg": alg, "who": who})

    def client_changed(self, action: str, client_id: str, who: str) -> None:
        if not self._log.isEnabledFor(logging.INFO):  # nothing built for nobody
            return
        self._emit(f"client.{action}", {"client_id": client_id, "who": who})


class _Throttle:
    """At most ``per_second`` events a second (a fixed window; races only blur the count)."""

    __slots__ = ("_left_out", "_per_second", "_start", "_written")

    def __init__(self, per_second: int) -> None:
        self._per_second = per_second
        self._start = float("-inf")
        self._written = 0
        self._left_out = 0

    def admit(self, now: float) -> int | None:
        """None to leave this event out, else how many were left out since the last one written."""
        if now - self._start >= 1.0:
            self._start, self._written = now, 0
        if self._written >= self._per_second:
            self._left_out += 1
            return None
        self._written += 1
        left_out, self._left_out = self._left_out, 0
        return left_out


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message`` (an audit record:
    its event's fields instead of ``message``). Exceptions add only their type: tracebacks and
    messages of foreign errors are not trusted to be free of secrets."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": _iso(record.created), "level": record.levelname, "logger": record.name}
        event = getattr(record, _EVENT_ATTR, None)
        if isinstance(event, dict):
            out.update(event)
            out["ts"] = event.get("ts", out["ts"])
        else:
            out["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out, separators=(",", ":"), default=str)


def log_format(environ: Mapping[str, str] | None = None) -> str:
    """``S2S_LOG_FORMAT``: ``text`` (default) or ``json``."""
    # That variable alone: the whole ObserveSettings would also resolve S2S_METRICS_TOKEN (an
    # aws-sm:// reference is a Secrets Manager call) and check metrics settings, to set up a log.
    env = EnvReader("S2S_", environ)
    value = env.choice("LOG_FORMAT", ("text", "json"), "text")
    env.finish()
    return value or "text"


_audit_files: dict[str, logging.Handler] = {}


def audit_file(environ: Mapping[str, str] | None = None) -> str | None:
    """``S2S_AUDIT_LOG=PATH``: also append the audit events, one JSON line each, to PATH (created
    0600). For processes that configure no logging of their own, such as the CLI: an operator's
    ``s2s keys rotate`` then leaves its trace. Idempotent; returns the path (None when unset)."""
    env = EnvReader("S2S_", environ)
    path = env.text("AUDIT_LOG")  # that variable alone, as in log_format()
    env.finish()
    if path is None or path in _audit_files:
        return path
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.close(fd)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    audit = logging.getLogger(AUDIT_LOGGER)
    audit.addHandler(handler)
    if audit.getEffectiveLevel() > logging.INFO:
        audit.setLevel(logging.INFO)
    _audit_files[path] = handler
    return path


def configure_logging(level: int = logging.INFO, environ: Mapping[str, str] | None = None) -> None:
    """Logging for a process hosting s2s (``s2s serve``, services): text lines, or one JSON object
    per line with ``S2S_LOG_FORMAT=json`` (audit events included, as their own objects)."""
    handler = logging.StreamHandler()
    if log_format(environ) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    audit_file(environ)
