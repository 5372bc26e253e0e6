"""s2s: service-to-service trust with short-lived signed JWTs.

One package per concept; import from the package, not its modules:

* :mod:`s2s.client` — token clients for our issuer (``TokenClient``, ``AsyncTokenClient``, ``BearerAuth``);
* :mod:`s2s.verify` — the verifier (``TokenVerifier``, ``VerifierConfig``, ``Principal``);
* :mod:`s2s.litestar` — the Litestar plugin and guards; :mod:`s2s.litestar.issuer` the issuer app;
* :mod:`s2s.issuer` — the issuer: clients, registries, the token endpoint, ``build_issuer``;
* :mod:`s2s.keys` — keys, keysets, rotation, key stores; :mod:`s2s.entra` — Entra ID and Graph;
* :mod:`s2s.secrets` — ``aws-sm://`` references; :mod:`s2s.aws` — the AWS access layer;
* :mod:`s2s.oauth` — the OAuth vocabulary clients and issuer share (``AccessToken``).

This module imports none of them, so a caller-only service loads only what it uses.
"""

from __future__ import annotations

from s2s.errors import ConfigError, MissingExtra, S2SError, VersionConflict

__all__ = ["ConfigError", "MissingExtra", "S2SError", "VersionConflict", "__version__"]

__version__ = "0.1.0"
