"""HTTP details shared by the clients (token client, MSAL transport, Graph)."""

from __future__ import annotations

import datetime
import email.utils
import ipaddress
import logging
from urllib.parse import urlsplit

from s2s.errors import ConfigError

__all__ = ["is_loopback_host", "parse_retry_after", "secure_url"]

log = logging.getLogger("s2s.http")
# URLs already warned about: an opted-in plain-http URL is logged once per process, not per call.
_warned: set[str] = set()


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP address (a name that merely starts so is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_url(url: str, what: str = "URL", *, allow_insecure_http: bool = False) -> str:
    """The one rule for every URL s2s sends credentials to or takes keys from: https; plain http
    only to a loopback address (tests, a sidecar on the same host), or anywhere when the caller
    opts in explicitly (``allow_insecure_http``: a mesh sidecar that adds TLS), logged once."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except (ValueError, TypeError, AttributeError):
        raise ConfigError(f"{what} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{what} must be an http(s) URL")
    if not host:
        raise ConfigError(f"{what} has no host")
    if parts.username or parts.password:
        raise ConfigError(f"{what} must not carry credentials")
    if parts.scheme == "https" or is_loopback_host(host):
        return url
    if allow_insecure_http:
        if url not in _warned and len(_warned) < 64:
            _warned.add(url)
            log.warning(
                "%s %s is plain http: credentials and tokens cross the network unencrypted", what, url
            )
        return url
    raise ConfigError(
        f"{what} must use https (plain http only to a loopback address, or with allow_insecure_http"
        " for a sidecar that adds TLS)"
    )


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date), or ``None``."""
    if value is None:
        return None
    value = value.strip()
    # isdigit() alone accepts non-ASCII digits such as "²", which float() then refuses.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; RFC 9110 dates are always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)
