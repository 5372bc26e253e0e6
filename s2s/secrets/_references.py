"""The one ``aws-sm://`` grammar, for secret values and for store locations.

::

    aws-sm://<name>[#<field>][?<param>=<value>[&<param>=<value>...]]

* ``<name>``: a secret name (``/`` allowed) or a full ARN (``:`` allowed); Secrets Manager allows
  neither ``#`` nor ``?`` in one.
* ``#<field>``: a field of a JSON secret (``%23`` for a ``#`` in the field name). Values only.
* parameters, each at most once:

  ======================  ==============================  =================================
  ``stage=<label>``        read the version with a label    values only (not with version_id)
  ``version_id=<id>``      read one version                 values only
  ``region=<region>``      the secret's AWS region          values and locations
  ``reload=<seconds>``     how often it is re-read          the client registry location only
  ======================  ==============================  =================================

A *value* reference (:func:`parse_reference`) names a secret whose content replaces the setting
(``S2S_CLIENT_SECRET=aws-sm://prod/orders#client_secret``). A *location* (:func:`parse_location`)
names a secret that a store reads and writes itself, whole and at ``AWSCURRENT``
(``S2S_KEYSTORE=aws-sm://prod/s2s/keyset?region=eu-west-1``). The fragment and the query may come
in either order, because the documented form (``#field?stage=``) puts the fragment first, which a
generic URL parser would read as one fragment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

from s2s.secrets.errors import InvalidSecretReference

__all__ = [
    "SCHEME",
    "VERSION_STAGES",
    "SecretLocation",
    "SecretReference",
    "is_reference",
    "parse_location",
    "parse_reference",
]

SCHEME = "aws-sm://"
VERSION_STAGES = frozenset({"AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"})
_NAME = re.compile(r"\A[A-Za-z0-9/_+=.@:\-]{1,2048}\Z")
# Custom staging labels are allowed by Secrets Manager (1-256 chars); accept them, not only the 3 AWS ones.
_PARAMS = {
    "stage": re.compile(r"\A[A-Za-z0-9_+=.@\-]{1,256}\Z"),
    "version_id": re.compile(r"\A[A-Za-z0-9\-]{32,64}\Z"),
    "region": re.compile(r"\A[a-z]{2}(-[a-z0-9]+){1,3}-[0-9]{1,2}\Z"),
    "reload": re.compile(r"\A[0-9]+(\.[0-9]+)?\Z"),
}
_VALUE_PARAMS = ("stage", "version_id", "region")


@dataclass(frozen=True, slots=True)
class SecretReference:
    """A parsed value reference. ``str(ref)`` gives back a canonical ``aws-sm://`` form (no value in it)."""

    name: str
    field: str | None = None
    stage: str | None = None
    version_id: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        if self.stage is not None and self.version_id is not None:
            raise InvalidSecretReference(str(self), "give a stage or a version_id, not both")

    def __str__(self) -> str:
        text = SCHEME + self.name
        if self.field is not None:
            text += "#" + quote(self.field, safe="")
        params = [(k, getattr(self, k)) for k in _VALUE_PARAMS if getattr(self, k) is not None]
        if params:
            text += "?" + "&".join(f"{k}={v}" for k, v in params)
        return text


@dataclass(frozen=True, slots=True)
class SecretLocation:
    """A parsed store location: the secret a store keeps its whole document in."""

    name: str
    region: str | None = None
    reload: float | None = None

    def __str__(self) -> str:
        return SCHEME + self.name


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.strip().startswith(SCHEME)


def parse_reference(text: str) -> SecretReference:
    """Parse a value reference; raise :class:`InvalidSecretReference` naming what is wrong."""
    raw, name, field, params = _parse(text, _VALUE_PARAMS)
    if "stage" in params and "version_id" in params:
        raise InvalidSecretReference(_shown(raw), "give a stage or a version_id, not both")
    return SecretReference(
        name=name,
        field=field,
        stage=params.get("stage"),
        version_id=params.get("version_id"),
        region=params.get("region"),
    )


def parse_location(text: str, what: str, *, reload: bool = False) -> SecretLocation:
    """Parse a store location (``what`` names the store in errors: "key store", "client registry").

    A location has no ``#field``, stage or version: the store owns the whole secret and always works
    on ``AWSCURRENT``. ``reload`` allows the ``reload=<seconds>`` parameter (> 0).
    """
    raw, name, field, params = _parse(text, ("region", "reload") if reload else ("region",), what)
    if field is not None:
        raise InvalidSecretReference(
            _shown(raw), f"a {what} location has no #field: it owns the whole secret"
        )
    seconds: float | None = None
    if "reload" in params:
        seconds = float(params["reload"])
        if seconds <= 0:
            raise InvalidSecretReference(_shown(raw), "reload must be > 0 seconds")
    return SecretLocation(name=name, region=params.get("region"), reload=seconds)


def _parse(
    text: str, allowed: Iterable[str], what: str = "secret"
) -> tuple[str, str, str | None, dict[str, str]]:
    raw = text.strip()
    if not raw.startswith(SCHEME):
        # Not a reference, so possibly a raw value: never echo it.
        raise InvalidSecretReference("<setting>", f"a {what} reference starts with {SCHEME}")
    rest = raw[len(SCHEME) :]
    cut = min((i for i in (rest.find("#"), rest.find("?")) if i >= 0), default=len(rest))
    name, tail = rest[:cut], rest[cut:]
    if not _NAME.match(name):
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
    if query == "?":
        raise InvalidSecretReference(_shown(raw), "the ?query is empty")
    params: dict[str, str] = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise InvalidSecretReference(_shown(raw), "the ?query is malformed") from None
        accepted = tuple(allowed)
        for key, value in pairs:
            pattern = _PARAMS.get(key)
            if key not in accepted or key in params or pattern is None or not pattern.match(value):
                usable = ", ".join(p + "=" for p in accepted)
                raise InvalidSecretReference(
                    _shown(raw), f"unknown, repeated or invalid parameter {key!r} (use {usable})"
                )
            params[key] = value
    return raw, name, field, params


def _shown(raw: str) -> str:
    # A reference holds no secret; the cap only keeps the one error line short.
    return raw if len(raw) <= 300 else raw[:300] + "..."
