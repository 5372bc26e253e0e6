"""The one seam between s2s and whatever watches it: :class:`Observer`.

The core (issuer logic, key manager, verifier, token clients, MSAL wrappers, CLI) calls typed
methods of an ``Observer`` at the places where something worth counting, auditing or tracing
happens, with values it has already computed. The base class does nothing, so a process that
subscribes nothing pays one method call per event. Subscribers override what they need:
:class:`s2s.observe.prometheus.PrometheusObserver` (metrics), :class:`s2s.observe.AuditLog` (the
``s2s.audit`` logger), :class:`s2s.observe.otel.OtelObserver` (spans). :class:`Fanout` sends each
event to several.

What the core may pass: identifiers it chose or read from its own configuration (client ids from
the registry, configured issuers and audiences, kids, refusal *types*), never a token, a secret, an
assertion, key material or a raw request path. Values a caller chose (a claimed client id) are
passed only where the method says so, for the audit trail; metrics never use them as labels.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

__all__ = ["NULL_SPAN", "Fanout", "Observer", "Span", "SpanValue", "observed_msal"]

SpanValue = str | int | float | bool


class Span(Protocol):
    """What :meth:`Observer.span` yields: attributes may be added while the span is open."""

    def set(self, key: str, value: SpanValue) -> None: ...


class _NullSpan:
    __slots__ = ()

    def set(self, key: str, value: SpanValue) -> None:
        pass

    if TYPE_CHECKING:  # the real ones are builtins, set below

        def __enter__(self) -> _NullSpan: ...

        def __exit__(self, *exc: object) -> None: ...


NULL_SPAN = _NullSpan()
# Every verification enters and leaves a span, so with nothing tracing these two run per token.
# ``with`` (and ExitStack) take them from the type and call them unbound when they are builtins
# (not descriptors): no Python frame at all. __enter__ returns NULL_SPAN (``next`` of an endless
# repeat, with or without a default argument); __exit__ returns "" whatever its arguments, a false
# value: an exception raised in the block propagates.
_NullSpan.__enter__ = functools.partial(next, itertools.repeat(NULL_SPAN))  # type: ignore[method-assign]
_NullSpan.__exit__ = "".format  # type: ignore[method-assign,assignment]

# Whether any observer class makes spans (overrides Observer.span): until one is defined (the
# OpenTelemetry subscriber, imported only with the extra), a span costs a global read.
_spans = False


class Observer:
    """No-op base: every method is an event, every default does nothing.

    ``who`` in the audit events is ``cli`` (an operator's command), ``schedule`` (the issuer's own
    rotation schedule) or ``issuer`` (the running issuer, e.g. a secret-hash upgrade).
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "span" in cls.__dict__ and cls.__name__ != "Fanout":
            global _spans  # noqa: PLW0603 - one switch for the process, flipped once
            _spans = True

    # -- spans -----------------------------------------------------------------------------------
    def span(self, name: str, **attributes: SpanValue) -> contextlib.AbstractContextManager[Span]:
        """A trace span around a block (OpenTelemetry when enabled; nothing otherwise)."""
        return NULL_SPAN

    # -- issuer: token endpoint ------------------------------------------------------------------
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
        """A token was signed for a registered client."""

    def token_refused(self, error: str, reason: str) -> None:
        """The token endpoint refused: ``error`` the RFC 6749 code, ``reason`` a bounded label
        (an error type or a client-authentication reason code)."""

    def client_auth_failed(self, client_id: str, method: str, reason: str, source: str | None) -> None:
        """Client authentication failed. ``client_id`` is what the caller *claimed* (cut and
        escaped; audit only), ``method`` ``client_secret``/``private_key_jwt``/``federated``/``none``,
        ``reason`` a short fixed description of ours."""

    def rate_limited(self, client_id: str, budget: str, source: str | None) -> None:
        """A request was answered ``slow_down``: ``budget`` is ``failures`` (failed
        authentications of this client id and address) or ``issuance`` (the client's own)."""

    def token_request(self, status: int, seconds: float) -> None:
        """One token-endpoint request answered with ``status`` after ``seconds``."""

    def dependency_error(self, dependency: str) -> None:
        """A dependency of the token endpoint failed a request: ``state`` (replay/rate state),
        ``registry`` or ``signer``."""

    # -- issuer: keys ----------------------------------------------------------------------------
    def keyset_loaded(self, keyset: object, loaded_at: float, policy: object) -> None:
        """The key manager installed ``keyset`` (a :class:`~s2s.keys.KeySet`) at ``loaded_at``,
        under ``policy`` (its :class:`~s2s.keys.rotation.RotationPolicy`)."""

    def keyset_reload_failed(self, reason: str) -> None:
        """A reload did not install the store's keyset; ``reason`` a bounded label."""

    def readiness(self, ready: bool) -> None:
        """The issuer's readiness as last computed."""

    def key_changed(self, action: str, kid: str, who: str, alg: str | None = None) -> None:
        """A key was ``generated``, ``rotated`` (became current), ``revoked`` or ``pruned``."""

    def client_changed(self, action: str, client_id: str, who: str) -> None:
        """A registry client was ``registered``, ``changed``, ``removed`` or ``secret_rotated``."""

    # -- verifier --------------------------------------------------------------------------------
    def verified(self, issuer: str, refusal: str | None, cached: bool) -> None:
        """One verification: ``refusal`` None when accepted, else the refusal's type name.
        ``issuer`` is a configured issuer (``-`` when the token named none we trust)."""

    def jwks_fetched(
        self, issuer: str, ok: bool, seconds: float, fetched_at: float, expires_at: float
    ) -> None:
        """A JWKS refresh of ``issuer`` ended; on success the wall times the keys were fetched and
        go stale."""

    def jwks_unknown_kid(self, issuer: str) -> None:
        """A token named a kid the keys did not have: a refetch is attempted."""

    # -- token clients and MSAL ------------------------------------------------------------------
    def client_token(self, client_id: str, outcome: str) -> None:
        """A token client answered ``get_token``: ``cache`` (served from its cache), ``fetched``,
        ``stale`` (a refresh ahead failed, the cached token served) or ``error``."""

    def client_request(self, client_id: str, outcome: str, seconds: float) -> None:
        """One HTTP request of a token client: ``ok``, ``refused`` (an OAuth error), ``error``."""

    def client_retry(self, client_id: str) -> None:
        """A token client will retry its request (after a transient failure)."""

    def msal_call(self, flow: str, outcome: str, seconds: float) -> None:
        """One call into MSAL: ``flow`` ``client_credentials``/``on_behalf_of``, ``outcome``
        ``ok``/``error``."""


class Fanout(Observer):
    """Sends every event to each observer in ``observers`` (subscribe and unsubscribe at any time).

    Each event goes straight to the subscribers that handle it: nested fan-outs are flattened and
    observers that leave an event to the no-op base are skipped, in a table rebuilt when any
    fan-out's subscribers change. An event nobody handles costs a dictionary lookup, and
    ``verified`` (sent by every verification) nothing more than a builtin call: while nobody
    handles it, a builtin that ignores its arguments shadows the method in the instance dict,
    removed from every fan-out as soon as any subscription changes.
    """

    __slots__ = ("__dict__", "__weakref__", "_seen", "_table", "observers")

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self.observers: list[Observer] = list(observers)
        self._seen = -1
        self._table: dict[str, list[Callable[..., None]]] = {}
        _fanouts.add(self)

    def subscribe(self, observer: Observer) -> None:
        if observer not in self.observers:
            self.observers.append(observer)
            _changed()

    def unsubscribe(self, observer: Observer) -> None:
        if observer in self.observers:
            self.observers.remove(observer)
            _changed()

    def _rebuild(self) -> None:
        seen = _generation  # read first: a change during the rebuild triggers another one
        self._table = {name: self._collect(name) for name in _EVENTS}
        self._seen = seen
        shadows = self.__dict__
        if self._table["verified"] or type(self).verified is not Fanout.verified:
            shadows.pop("verified", None)
        else:
            shadows["verified"] = _IGNORE
            # Installed, then the generation read again: a change since ``seen`` (whose
            # _changed() may have run before the shadow existed) removes it.
            if _generation != seen:
                shadows.pop("verified", None)

    def _collect(self, event: str) -> list[Callable[..., None]]:
        out: list[Callable[..., None]] = []
        for o in self.observers:
            if isinstance(o, Fanout):
                out.extend(o._collect(event))
            elif getattr(type(o), event) is not getattr(Observer, event):
                out.append(getattr(o, event))
        return out

    def span(self, name: str, **attributes: SpanValue) -> contextlib.AbstractContextManager[Span]:
        if not _spans:
            return NULL_SPAN
        spans = [o.span(name, **attributes) for o in self.observers]
        real = [s for s in spans if s is not NULL_SPAN]
        if not real:
            return NULL_SPAN
        if len(real) == 1:
            return real[0]
        return _stacked(real)

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
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["token_issued"]:
            fn(client_id, audience, scopes, jti=jti, kid=kid, expires_at=expires_at, source=source)

    def token_refused(self, error: str, reason: str) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["token_refused"]:
            fn(error, reason)

    def client_auth_failed(self, client_id: str, method: str, reason: str, source: str | None) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["client_auth_failed"]:
            fn(client_id, method, reason, source)

    def rate_limited(self, client_id: str, budget: str, source: str | None) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["rate_limited"]:
            fn(client_id, budget, source)

    def token_request(self, status: int, seconds: float) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["token_request"]:
            fn(status, seconds)

    def dependency_error(self, dependency: str) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["dependency_error"]:
            fn(dependency)

    def keyset_loaded(self, keyset: object, loaded_at: float, policy: object) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["keyset_loaded"]:
            fn(keyset, loaded_at, policy)

    def keyset_reload_failed(self, reason: str) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["keyset_reload_failed"]:
            fn(reason)

    def readiness(self, ready: bool) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["readiness"]:
            fn(ready)

    def key_changed(self, action: str, kid: str, who: str, alg: str | None = None) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["key_changed"]:
            fn(action, kid, who, alg)

    def client_changed(self, action: str, client_id: str, who: str) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["client_changed"]:
            fn(action, client_id, who)

    def verified(self, issuer: str, refusal: str | None, cached: bool) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["verified"]:
            fn(issuer, refusal, cached)

    def jwks_fetched(
        self, issuer: str, ok: bool, seconds: float, fetched_at: float, expires_at: float
    ) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["jwks_fetched"]:
            fn(issuer, ok, seconds, fetched_at, expires_at)

    def jwks_unknown_kid(self, issuer: str) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["jwks_unknown_kid"]:
            fn(issuer)

    def client_token(self, client_id: str, outcome: str) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["client_token"]:
            fn(client_id, outcome)

    def client_request(self, client_id: str, outcome: str, seconds: float) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["client_request"]:
            fn(client_id, outcome, seconds)

    def client_retry(self, client_id: str) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["client_retry"]:
            fn(client_id)

    def msal_call(self, flow: str, outcome: str, seconds: float) -> None:
        if self._seen != _generation:
            self._rebuild()
        for fn in self._table["msal_call"]:
            fn(flow, outcome, seconds)


_EVENTS = (
    "token_issued",
    "token_refused",
    "client_auth_failed",
    "rate_limited",
    "token_request",
    "dependency_error",
    "keyset_loaded",
    "keyset_reload_failed",
    "readiness",
    "key_changed",
    "client_changed",
    "verified",
    "jwks_fetched",
    "jwks_unknown_kid",
    "client_token",
    "client_request",
    "client_retry",
    "msal_call",
)
# Bumped whenever a fan-out's subscribers change: every fan-out rebuilds its table on next use.
_generation = 0


def _changed() -> None:
    global _generation  # noqa: PLW0603 - a process-wide version of the subscriptions
    _generation += 1
    for fanout in list(_fanouts):
        fanout.__dict__.pop("verified", None)


# Every fan-out alive: a change of subscriptions removes their ``verified`` shadows at once.
_fanouts: weakref.WeakSet[Fanout] = weakref.WeakSet()
# Takes any arguments, does nothing (returns "").
_IGNORE: Callable[..., object] = "".format


@contextlib.contextmanager
def _stacked(spans: list[contextlib.AbstractContextManager[Span]]) -> Iterator[Span]:
    with contextlib.ExitStack() as stack:
        entered = [stack.enter_context(s) for s in spans]
        yield _SpanGroup(entered)


class _SpanGroup:
    __slots__ = ("_spans",)

    def __init__(self, spans: list[Span]) -> None:
        self._spans = spans

    def set(self, key: str, value: SpanValue) -> None:
        for s in self._spans:
            s.set(key, value)


@contextlib.contextmanager
def observed_msal(observer: Observer, flow: str) -> Iterator[None]:
    """One MSAL call: a ``s2s.msal`` span, then :meth:`Observer.msal_call` with its outcome."""
    started = time.perf_counter()
    outcome = "error"
    try:
        with observer.span("s2s.msal", **{"s2s.msal.flow": flow}):
            yield
        outcome = "ok"
    finally:
        observer.msal_call(flow, outcome, time.perf_counter() - started)
