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

__all__ = ["HELP_WIDTH", "emit", "fail", "main", "missing_location", "table"]


# Modules that add commands to ``main`` (each imports ``main`` from here, so they load last).
_COMMAND_MODULES = ("s2s.cli._keys", "s2s.cli._clients", "s2s.cli._serve", "s2s.cli._token")


class _Group(click.Group):
    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        # Click's own errors (usage, a bad value) in the same one-line form as every other error,
        # with click's message kept whole: it carries the "Did you mean ...?" suggestion.
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: click shows its help
                exc.show()
                sys.exit(exc.exit_code)
            where = exc.ctx.command_path if exc.ctx is not None else "s2s"
            fail(f"{exc.format_message()} (`{where} --help` for usage)", exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail("aborted")
        sys.exit(code if isinstance(code, int) else 0)

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


def missing_location(what: str, url: str, create: str, option: str) -> None:
    """End a command that found no ``what`` at ``url``: where it looked and how to make one.

    File stores are relative to the working directory unless absolute: say which one was meant.
    """
    where = url
    path = url.removeprefix("file://") if url.startswith("file://") or "://" not in url else None
    if path is not None and not os.path.isabs(path):
        where = f"{url} (relative to the current directory {os.getcwd()})"
    fail(f"no {what} at {where}; create it with `{create}`, or point {option} at an existing one")


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


# Lines of ``--help`` (and so of docs/reference/cli.md, generated from it): click's width in an
# 80-column terminal.
HELP_WIDTH = 78


def _show_envvars(command: click.Command) -> None:
    """Every option read from the environment says so in ``--help`` (``[env var: S2S_...]``)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _show_envvars(sub)


for _name in _COMMAND_MODULES:
    importlib.import_module(_name)
_show_envvars(main)
