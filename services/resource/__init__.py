"""An example resource service: ``uvicorn services.resource.app:app`` (settings from ``S2S_*``)."""

from __future__ import annotations

__all__: list[str] = []
