"""One reader for settings in environment variables: every ``from_env`` in s2s goes through it.

:class:`EnvReader` reads ``<prefix><NAME>`` variables and parses numbers, whole numbers, booleans,
lists and durations. A value may be an ``aws-sm://`` reference to a secret: it is resolved when
read (store *locations* such as ``S2S_KEYSTORE`` are read with :meth:`EnvReader.location` and never
resolved). Problems are collected, not raised one by one: :meth:`EnvReader.finish` raises one
:class:`~s2s.errors.ConfigError` whose one line names every missing variable and every invalid
one, so an operator fixes them all in one go. Every message names the variable; a value is quoted
only when it came from the environment itself (never a secret's content).

Conventions: an empty or blank variable counts as unset (``VAR=`` in a compose file unsets it);
booleans are ``1/true/yes/on`` and ``0/false/no/off``; lists are separated by commas and/or
spaces; durations are seconds, or a number with a unit: ``ms``, ``s``, ``m``, ``h``, ``d``.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from s2s.errors import ConfigError

if TYPE_CHECKING:
    from s2s.secrets._source import SecretSource
    from s2s.secrets.errors import SecretError

__all__ = ["EnvReader", "parse_duration"]

_T = TypeVar("_T", int, float)
_B = TypeVar("_B")
_Flag = TypeVar("_Flag", bool, None)
_SCALARS = (str, int, float, bool, tuple)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"\A([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m|h|d)?\Z")


def parse_duration(text: str) -> float:
    """Seconds from ``"90"``, ``"1.5"``, ``"250ms"``, ``"30s"``, ``"5m"``, ``"2h"`` or ``"7d"``.

    Raises :class:`ValueError` for anything else (negative, NaN, infinite, unknown unit).
    """
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise ValueError(text)
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds):
        raise ValueError(text)
    return seconds


def _duration_or_number(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        return float(text)


def _one_line_when_uncaught() -> None:
    """Make an uncaught settings error end the process with its one line, not a traceback.

    ``from_env`` usually runs while a server imports the app (``uvicorn services.resource.app:app``,
    a plugin built at module level): there the error escapes to ``sys.excepthook``, and its message,
    which names every missing or invalid variable, would sit under dozens of traceback lines. Only
    settings errors change; everything else (and ``S2S_DEBUG=1``) keeps the previous hook.
    """
    previous = sys.excepthook
    if getattr(previous, "_s2s_settings_hook", False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        from s2s.secrets.errors import SecretError  # noqa: PLC0415 - only when an error is shown

        debug = os.environ.get("S2S_DEBUG", "").strip().lower() in _TRUE
        if isinstance(value, ConfigError | SecretError) and not debug:
            sys.stderr.write(f"s2s: error: {value}\n")
            sys.stderr.flush()
            return
        previous(kind, value, tb)

    hook._s2s_settings_hook = True  # type: ignore[attr-defined]
    sys.excepthook = hook


class EnvReader:
    """Typed reads of ``prefix*`` variables; see the module docstring.

    ``secrets`` replaces the Secrets Manager source used for ``aws-sm://`` values (tests); no AWS
    client is made unless a variable that is read holds a reference.
    """

    def __init__(
        self,
        prefix: str = "S2S_",
        environ: Mapping[str, str] | None = None,
        *,
        secrets: SecretSource | None = None,
    ) -> None:
        self.prefix = prefix
        self._env = os.environ if environ is None else environ
        self._secrets = secrets
        self._missing: list[str] = []
        self._invalid: list[str] = []
        self._secret_failures: list[tuple[str, SecretError]] = []
        self._resolved: set[str] = set()

    def name(self, key: str) -> str:
        """The variable's full name: ``prefix + key``."""
        return self.prefix + key

    def given(self, key: str) -> bool:
        """Whether the variable is set to something other than blanks."""
        return bool(self._env.get(self.name(key), "").strip())

    # -- text ----------------------------------------------------------------------------------
    def location(self, key: str, default: str) -> str:
        """A store location (``file://...``, ``aws-sm://NAME``...): used as written, never resolved."""
        return self.raw(key) or default

    def raw(self, key: str) -> str | None:
        """The value as written, a reference left unresolved: for a consumer that resolves it itself
        (a store location; a secret that may be binary, such as a PFX)."""
        raw = self._env.get(self.name(key), "").strip()
        return raw or None

    def text(self, key: str, default: str | None = None) -> str | None:
        """The value (an ``aws-sm://`` reference resolved), or ``default`` when unset."""
        name = self.name(key)
        raw = self._env.get(name)
        if raw is None or not raw.strip():
            return default
        if not raw.strip().startswith("aws-sm://"):
            return raw
        return self._resolve(name, raw)

    def require(self, key: str) -> str:
        """A required value; an unset one is reported by :meth:`finish` (``""`` until then)."""
        value = self.text(key)
        if value is None:
            if self.name(key) not in self._failed_names():
                self._missing.append(self.name(key))
            return ""
        return value

    def one_of(self, *keys: str) -> str | None:
        """The first of ``keys`` that is set (alternatives); when none is, all are reported as missing
        together (``A or B``)."""
        for key in keys:
            if self.given(key):
                return key
        self._missing.append(" or ".join(self.name(k) for k in keys))
        return None

    # -- parsed values ------------------------------------------------------------------------------
    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self._parsed(key, float, "a number")
        if value is None or not self._within(key, value, minimum, maximum, finite=True):
            return default
        return value

    def integer(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self._parsed(key, int, "a whole number")
        if value is None or not self._within(key, value, minimum, maximum):
            return default
        return value

    def duration(
        self,
        key: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        checked: bool = True,
    ) -> float:
        """Seconds (see :func:`parse_duration`). ``checked=False`` passes a number that is no duration
        (``nan``, ``inf``, ``-5``) on for the settings object to refuse with its own words."""
        parse = parse_duration if checked else _duration_or_number
        value = self._parsed(key, parse, "a duration (seconds, or a number with ms, s, m, h or d)")
        if value is None or not self._within(key, value, minimum, maximum):
            return default
        return value

    def flag(self, key: str, default: _Flag) -> bool | _Flag:
        value = self.text(key)
        if value is None:
            return default
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        self._invalid.append(f"{self._shown(key, value)} must be true or false")
        return default

    def strings(self, key: str, default: Iterable[str] = ()) -> tuple[str, ...]:
        """A list: items separated by commas and/or whitespace; duplicates dropped, order kept."""
        value = self.text(key)
        if value is None:
            return tuple(default)
        return tuple(dict.fromkeys(item for item in re.split(r"[\s,]+", value) if item))

    def choice(self, key: str, choices: Iterable[str], default: str | None = None) -> str | None:
        value = self.text(key)
        if value is None:
            return default
        allowed = tuple(choices)
        if value.strip() not in allowed:
            self._invalid.append(f"{self._shown(key, value)} must be one of {', '.join(allowed)}")
            return default
        return value.strip()

    def build(
        self, cls: Callable[..., _B], values: Mapping[str, Any], names: Mapping[str, str] | None = None
    ) -> _B:
        """``cls(**values)`` after :meth:`finish`; a :class:`ConfigError` from its own validation is
        prefixed with the variables it concerns. A field's variable is its name in upper case;
        ``names`` adds or overrides (field -> key), e.g. for the fields of an embedded object."""
        self.finish()
        try:
            return cls(**values)
        except ConfigError as exc:
            keys = {f: f.upper() for f, v in values.items() if v is None or isinstance(v, _SCALARS)}
            keys.update(names or {})
            text = exc.description
            concerned = [self.name(k) for f, k in keys.items() if re.search(rf"\b{re.escape(f)}\b", text)]
            if not concerned:
                raise
            raise ConfigError(f"{', '.join(concerned)}: {text}") from None

    def invalid(self, key: str, problem: str) -> None:
        """Record a problem with a variable found by the caller (e.g. two settings that conflict)."""
        self._invalid.append(f"{self.name(key)} {problem}")

    # -- the end ------------------------------------------------------------------------------------
    def finish(self) -> None:
        """Raise one error naming every problem found so far, if any."""
        parts: list[str] = []
        if self._missing:
            plural = "s" if len(self._missing) > 1 else ""
            parts.append(f"missing setting{plural}: {', '.join(self._missing)}")
        parts.extend(self._invalid)
        if self._secret_failures:
            name, first = self._secret_failures[0]
            error = type(first)(f"{name}={first.reference}", first.problem)
            rest = [f"{n}={e.reference}: {e.problem}" for n, e in self._secret_failures[1:]]
            if rest or parts:
                error.description = "; ".join([error.description, *rest, *parts])
                error.args = (error.description,)
            _one_line_when_uncaught()
            raise error
        if parts:
            _one_line_when_uncaught()
            raise ConfigError("; ".join(parts))

    # -- machinery ----------------------------------------------------------------------------------
    def _resolve(self, name: str, raw: str) -> str | None:
        # Imported on demand: only a deployment that uses references needs the secrets machinery.
        from s2s.secrets._resolve import resolve  # noqa: PLC0415
        from s2s.secrets._source import SecretsManagerSource  # noqa: PLC0415
        from s2s.secrets.errors import SecretError  # noqa: PLC0415

        if self._secrets is None:
            self._secrets = SecretsManagerSource()
        try:
            value = resolve(raw, source=self._secrets)
        except SecretError as exc:
            self._secret_failures.append((name, exc))
            return None
        self._resolved.add(name)
        return value

    def _failed_names(self) -> set[str]:
        return {name for name, _ in self._secret_failures}

    def _parsed(self, key: str, parse: Callable[[str], _T], what: str) -> _T | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return parse(value.strip())
        except ValueError:
            self._invalid.append(f"{self._shown(key, value)} must be {what}")
            return None

    def _shown(self, key: str, value: str) -> str:
        name = self.name(key)
        if name in self._resolved:
            return f"{name} (from its aws-sm:// secret)"  # never the secret's content
        return f"{name}={value.strip()[:80]!r}"

    def _within(
        self, key: str, value: float, minimum: float | None, maximum: float | None, *, finite: bool = False
    ) -> bool:
        if finite and not math.isfinite(value):
            self._invalid.append(f"{self.name(key)} must be a finite number")
            return False
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            if minimum is not None and maximum is not None:
                bounds = f"between {minimum:g} and {maximum:g}"
            elif minimum is not None:
                bounds = f"at least {minimum:g}"
            else:
                bounds = f"at most {maximum:g}"
            self._invalid.append(f"{self.name(key)} must be {bounds}, not {value:g}")
            return False
        return True
