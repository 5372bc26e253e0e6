"""ASGI entry point: ``uvicorn services.issuer.app:app`` from the repository root.

Settings come from ``S2S_*`` environment variables (see :class:`s2s.issuer.IssuerSettings`);
with none set, keys live in ``keys/`` and clients in ``keys/clients.json``.
"""

from __future__ import annotations

from s2s.issuer import IssuerSettings
from s2s.litestar.issuer import configure_host_logging, create_issuer_app

__all__ = ["app"]

# As a service, this module is the app's host.
configure_host_logging()

app = create_issuer_app(IssuerSettings.from_env())
