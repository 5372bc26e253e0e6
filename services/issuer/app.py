"""ASGI entry point: ``uvicorn services.issuer.app:app`` from the repository root.

Settings come from ``S2S_*`` environment variables (see :class:`s2s.issuer.IssuerSettings`);
with none set, keys live in ``keys/`` and clients in ``keys/clients.json``.
"""

from __future__ import annotations

import logging

from s2s.issuer.settings import IssuerSettings
from s2s.litestar.issuer import create_issuer_app

__all__ = ["app"]

# The app leaves logging to its host; as a service, this module is the host. (Litestar's own
# default would replace the root handlers and hide s2s's lines from the application's logging.)
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

app = create_issuer_app(IssuerSettings.from_env())
