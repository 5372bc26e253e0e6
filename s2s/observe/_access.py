"""Who may read the metrics: the rule the issuer's ``/metrics`` and the metrics port share.

The metrics list every registered client id and audience (the token endpoint hides which client
ids exist), so they are not for anyone who can reach the issuer. Without ``S2S_METRICS_TOKEN``,
``/metrics`` on the main port answers callers on this machine only (a local ``s2s serve --demo``,
a Prometheus agent beside it), and a metrics port may bind only a loopback address
(:func:`s2s.http.is_loopback_host`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

__all__ = ["bearer_matches", "local_peer"]

# A proxy on this host (nginx, a mesh sidecar) relays every caller from 127.0.0.1; these headers
# say a request came through one, so it is not taken as local.
_FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip")


def local_peer(host: str | None, headers: Mapping[str, str]) -> bool:
    """Whether a request came from this machine: its peer is a loopback IP address (not a name:
    a test client's ``"testclient"`` is not local) and no proxy says it forwarded it."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback and not any(name in headers for name in _FORWARDED)


def bearer_matches(authorization: str, token: str) -> bool:
    """``authorization`` is ``Bearer <token>`` (compared in constant time)."""
    presented = authorization.encode("latin-1", "replace")
    return hmac.compare_digest(presented, b"Bearer " + token.encode())
