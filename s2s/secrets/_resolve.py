"""Resolve ``aws-sm://`` references in settings, once, at startup."""

from __future__ import annotations

import os
from collections.abc import Mapping

from s2s.secrets._references import is_reference
from s2s.secrets._source import SecretsManagerSource, SecretSource
from s2s.secrets.errors import SecretError

__all__ = ["resolve", "resolve_env", "resolve_settings"]


def resolve(value: str, *, source: SecretSource | None = None) -> str:
    """``value`` itself, or the text of the secret it references."""
    if not is_reference(value):
        return value
    return _text((source or SecretsManagerSource()).get(value), value.strip())


def resolve_settings(settings: Mapping[str, str], *, source: SecretSource | None = None) -> dict[str, str]:
    """A copy of ``settings`` with every reference replaced by its secret.

    Every reference is tried; if any fails, one :class:`SecretError` lists each failing setting and
    reference on one line (never a value). No AWS client is made when there is no reference.
    """
    from s2s._env import EnvReader  # noqa: PLC0415 - the settings reader builds on this module

    env = EnvReader("", settings, secrets=source)
    out = dict(settings)
    for key, value in settings.items():
        if is_reference(value):
            out[key] = env.text(key) or ""
    env.finish()
    return out


def resolve_env(
    prefix: str = "S2S_", *, environ: Mapping[str, str] | None = None, source: SecretSource | None = None
) -> dict[str, str]:
    """A copy of the environment where ``<prefix>*`` references are resolved (others left alone)."""
    env = dict(os.environ if environ is None else environ)
    chosen = {k: v for k, v in env.items() if k.startswith(prefix)}
    env.update(resolve_settings(chosen, source=source))
    return env


def _text(value: str | bytes, shown: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(shown, "the secret is binary, not UTF-8 text; reference a string secret") from None
