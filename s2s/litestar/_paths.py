"""Which path a request was routed on, and whether its spelling could walk out of an exclusion.

Servers hand paths over half-interpreted: uvicorn keeps ``..`` and ``.`` segments and decodes
``%2e%2e`` and ``%2f`` into ``path``; Litestar collapses repeated slashes and nothing else; static
file routers and mounted apps then resolve the segments themselves. A path that still has a dot
segment after any of these decodings therefore names something other than what it spells, and is
never allowed to match an exclusion (see :func:`has_dot_segment`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from litestar.types import Scope
from litestar.utils.path import normalize_path

__all__ = ["has_dot_segment", "routed_path", "walks"]

# A "." or ".." segment, with "/" or "\" as separators (a static router on Windows treats "\" as one).
_DOT_SEGMENT = re.compile(r"(?:^|[/\\])\.{1,2}(?:$|[/\\])")


def has_dot_segment(path: str) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment, also after one more percent-decoding."""
    if "." not in path and "%" not in path:
        return False
    if _DOT_SEGMENT.search(path) is not None:
        return True
    # A second decoding: "%252e%252e" arrives as "%2e%2e", which a handler that decodes its
    # parameter again (or a proxy in front) would turn into "..".
    return "%" in path and _DOT_SEGMENT.search(unquote(path)) is not None


def walks(scope: Scope) -> bool:
    """Whether the request's path, as the server decoded it or as sent (``raw_path``), has a dot segment."""
    if has_dot_segment(scope["path"]):
        return True
    raw = scope.get("raw_path")
    return bool(raw) and has_dot_segment(unquote(raw.decode("latin-1").partition("?")[0]))


def routed_path(scope: Scope, *, mounted: bool) -> str | None:
    """The application path the request was routed on; None when it cannot be known.

    For a mounted ASGI app Litestar replaces ``scope["path"]`` with the part below the mount point
    (``/admin/public/x`` arrives as ``/public/x``), so the full path is rebuilt from ``raw_path`` the
    way the router derived it (decode, drop ``root_path``, normalise); without ``raw_path`` it is
    unknown and no exclusion applies (fail closed).
    """
    if not mounted:
        return scope["path"]
    raw = scope.get("raw_path")
    if not raw:
        return None
    path = unquote(raw.decode("latin-1").partition("?")[0])
    if root_path := scope.get("root_path", ""):
        path = path.split(root_path, maxsplit=1)[-1]
    return normalize_path(path)
