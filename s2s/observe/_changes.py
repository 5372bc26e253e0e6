"""Key lifecycle events from two keysets: one rule for the CLI and the issuer's schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING

from s2s.observe._observer import Observer

if TYPE_CHECKING:
    from s2s.keys import KeySet

__all__ = ["report_key_changes"]


def report_key_changes(observer: Observer, before: KeySet, after: KeySet, who: str) -> None:
    """``generated`` (a kid that was not there), ``rotated`` (a key became current), ``revoked``,
    ``retired``, ``pruned`` (a kid that is gone), each with ``who`` (``cli`` or ``schedule``)."""
    old = {k.kid: k for k in before}
    for key in after:
        was = old.pop(key.kid, None)
        state = key.state.value
        if was is None:
            observer.key_changed("generated", key.kid, who, key.alg)
        if (was is None or was.state is not key.state) and state in ("current", "revoked", "retired"):
            observer.key_changed("rotated" if state == "current" else state, key.kid, who, key.alg)
    for key in old.values():
        observer.key_changed("pruned", key.kid, who, key.alg)
