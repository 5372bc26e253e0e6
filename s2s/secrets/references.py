"""``aws-sm://`` references: any setting may name a secret instead of holding it.

Grammar: ``aws-sm://<name>[#<json-field>][?stage=<stage>|?version_id=<id>]``. The fragment and the
query may come in either order, because the documented form (``#field?stage=``) puts the fragment
first, which a generic URL parser would read as one fragment. ``<name>`` may be a secret name (with
``/``) or a full ARN (with ``:``); neither may contain ``#`` or ``?`` in Secrets Manager.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

from s2s.secrets.errors import InvalidSecretReference

__all__ = ["SCHEME", "VERSION_STAGES", "SecretReference", "is_reference", "parse_reference"]

SCHEME = "aws-sm://"
VERSION_STAGES = frozenset({"AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"})
_NAME = re.compile(r"^[A-Za-z0-9/_+=.@:\-]{1,2048}$")
# Custom staging labels are allowed by Secrets Manager (1-256 chars); accept them, not only the 3 AWS ones.
_STAGE = re.compile(r"^[A-Za-z0-9_+=.@\-]{1,256}$")
_VERSION_ID = re.compile(r"^[A-Za-z0-9\-]{32,64}$")


@dataclass(frozen=True, slots=True)
class SecretReference:
    """A parsed reference. ``str(ref)`` gives back a canonical ``aws-sm://`` form (no value in it)."""

    name: str
    field: str | None = None
    stage: str | None = None
    version_id: str | None = None

    def __post_init__(self) -> None:
        if self.stage is not None and self.version_id is not None:
            raise InvalidSecretReference(str(self), "give a stage or a version_id, not both")

    def __str__(self) -> str:
        text = SCHEME + self.name
        if self.field is not None:
            text += "#" + quote(self.field, safe="")
        if self.stage is not None:
            text += "?stage=" + self.stage
        elif self.version_id is not None:
            text += "?version_id=" + self.version_id
        return text


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.strip().startswith(SCHEME)


def parse_reference(text: str) -> SecretReference:
    """Parse ``aws-sm://...``; raise :class:`InvalidSecretReference` naming what is wrong."""
    raw = text.strip()
    if not raw.startswith(SCHEME):
        # Not a reference, so possibly a raw value: never echo it.
        raise InvalidSecretReference("<setting>", f"a secret reference starts with {SCHEME}")
    rest = raw[len(SCHEME) :]
    cut = min((i for i in (rest.find("#"), rest.find("?")) if i >= 0), default=len(rest))
    name, tail = rest[:cut], rest[cut:]
    if not _NAME.fullmatch(name):
        raise InvalidSecretReference(_shown(raw), "the secret name is empty or has characters AWS refuses")
    field: str | None = None
    query = ""
    while tail:
        marker, tail = tail[0], tail[1:]
        nxt = tail.find("?" if marker == "#" else "#")
        part, tail = (tail, "") if nxt < 0 else (tail[:nxt], tail[nxt:])
        if marker == "#":
            if field is not None or "#" in part:
                raise InvalidSecretReference(_shown(raw), "more than one #field (write # in a field as %23)")
            field = unquote(part)
            if not field:
                raise InvalidSecretReference(_shown(raw), "the #field is empty")
        else:
            if query:
                raise InvalidSecretReference(_shown(raw), "more than one ?query")
            query = part or "?"
    stage: str | None = None
    version_id: str | None = None
    if query and query != "?":
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise InvalidSecretReference(_shown(raw), "the ?query is malformed") from None
        for key, value in pairs:
            if key == "stage" and stage is None and _STAGE.fullmatch(value):
                stage = value
            elif key == "version_id" and version_id is None and _VERSION_ID.fullmatch(value):
                version_id = value
            else:
                raise InvalidSecretReference(
                    _shown(raw), f"unknown, repeated or invalid parameter {key!r} (use stage= or version_id=)"
                )
    elif query:
        raise InvalidSecretReference(_shown(raw), "the ?query is empty")
    if stage is not None and version_id is not None:
        raise InvalidSecretReference(_shown(raw), "give a stage or a version_id, not both")
    return SecretReference(name=name, field=field, stage=stage, version_id=version_id)


def _shown(raw: str) -> str:
    # A reference holds no secret; the cap only keeps the one error line short.
    return raw if len(raw) <= 300 else raw[:300] + "..."
