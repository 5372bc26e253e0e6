"""Runnable apps built only from the ``s2s`` library."""

from __future__ import annotations

__all__: list[str] = []
