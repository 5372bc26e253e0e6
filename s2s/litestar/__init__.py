"""Litestar adapters: the verifier plugin and guards, and the issuer app."""

from __future__ import annotations

__all__: list[str] = []
