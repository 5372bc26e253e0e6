"""The issuer service: ``uvicorn services.issuer.app:app`` (settings from ``S2S_*`` variables)."""

from __future__ import annotations

__all__: list[str] = []
