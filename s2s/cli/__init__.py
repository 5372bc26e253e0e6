"""The ``s2s`` command. Subcommands live in one module each and register themselves here.

Every failure is one line on stderr naming the problem and a non-zero exit; never a traceback,
unless ``S2S_DEBUG=1`` asks for one for an unexpected error.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from s2s import __version__
from s2s.errors import S2SError

__all__ = ["emit", "fail", "main", "table"]


# Modules that add commands to ``main`` (each imports ``main`` from here, so they load last).
_COMMAND_MODULES = ("s2s.cli.keys", "s2s.cli.clients", "s2s.cli.serve", "s2s.cli.token")


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except S2SError as exc:
            fail(f"{exc.error}: {exc.description}")
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except OSError as exc:
            fail(f"{type(exc).__name__}: {exc.strerror or exc}")
        except Exception as exc:
            if os.environ.get("S2S_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
                raise  # the operator asked for the traceback
            # Unknown errors still get one line; their message is not trusted to be secret-free.
            fail(f"unexpected {type(exc).__name__}; rerun with S2S_DEBUG=1 for details")


def fail(message: str, code: int = 1) -> None:
    click.echo(f"s2s: error: {message}", err=True)
    sys.exit(code)


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    """``--json`` prints data for scripts; otherwise ``human`` prints a table."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        human()


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="s2s")
def main() -> None:
    """s2s: short-lived signed tokens between services."""


for _name in _COMMAND_MODULES:
    importlib.import_module(_name)
