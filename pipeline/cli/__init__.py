"""The finer-traits command line (typer). Each command lives in its own module and only calls the library.

Commands from the layers above the pipeline (evaluation's `evaluate` and `synth`) are added through the
`finer_traits.commands` entry point group: each entry point names a function that takes the app and adds its
commands, so the pipeline never imports those layers.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console

from traits.errors import FinerTraitsError
from traits.version import __version__

COMMANDS_GROUP = "finer_traits.commands"

app = typer.Typer(
    name="finer-traits",
    help="Find the visible traits that tell a species apart from a similar one, and check them against expert lists.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


DEBUG_ENV = "FINER_TRAITS_DEBUG"
INTERRUPTED = "Interrupted. Work saved so far is kept; run the same command again to resume."
_debug = False


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the finer-traits version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logging."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback when something goes wrong."),
) -> None:
    """Find the visible traits that tell a species apart from a similar one."""
    global _debug
    _debug = _debug or debug
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if version:
        typer.echo(f"finer-traits {__version__}")
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the one place where every failure becomes a short message and an exit code.

    Exit codes: 0 done, 1 some photos failed or an unexpected error (details in a log file), 2 bad input or
    options (the message says how to fix it), 130 interrupted.
    """
    import os

    global _debug
    args = list(sys.argv[1:] if argv is None else argv)
    _debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        rv = app(args=args, prog_name="finer-traits", standalone_mode=False)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        if code == 130:  # typer turns Ctrl-C into a silent Exit(130); no command exits 130 by itself
            err_console.print(INTERRUPTED, highlight=False)
    except FinerTraitsError as exc:
        if _debug:
            err_console.print_exception()
        err_console.print(f"[bold red]error[/] {_escape(str(exc))}", highlight=False)
        code = 2
    except _click_exceptions("Abort"):  # click turns KeyboardInterrupt (and EOF at a prompt) into Abort
        err_console.print(INTERRUPTED, highlight=False)
        code = 130
    except KeyboardInterrupt:
        err_console.print(INTERRUPTED, highlight=False)
        code = 130
    except _click_exceptions("ClickException") as exc:
        _show_usage_error(exc)
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the boundary: anything else is a bug or an unhandled case
        code = _unexpected(exc, args)
    sys.exit(code)


def _click_exceptions(name: str) -> tuple[type[BaseException], ...]:
    """The click exception class of that name, from click and from the copy of click that typer ships."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _escape(text: str) -> str:
    # Messages quote file names and cells: '[' in them must not be read as rich markup.
    from rich.markup import escape

    return escape(text)


def _show_usage_error(exc: Exception) -> None:
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # the same boxed message typer prints in standalone mode
    except Exception:  # noqa: BLE001 - typer internals moved: click's own plain message is as clear
        exc.show()


def _unexpected(exc: BaseException, args: list[str]) -> int:
    """Write the traceback to a log file and print one short message naming it; --debug prints it too."""
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log = _write_log(text, args)
    if _debug:
        err_console.print(text, markup=False, highlight=False)
    summary = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
    where = f"The details are in {log}." if log else "No log file could be written."
    err_console.print(f"[bold red]error[/] [FT999] Unexpected error ({_escape(summary)}).\n  {_escape(where)} "
                      "Run again with --debug to see the traceback; please report it with that log.",
                      highlight=False)
    return 1


def _write_log(text: str, args: list[str]) -> str | None:
    import os
    import tempfile
    import time

    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    for folder in (os.path.join(base, "finer-traits", "logs"), os.path.join(tempfile.gettempdir(), "finer-traits")):
        try:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(f"finer-traits {__version__}\nargs: {args!r}\n\n{text}")
            return path
        except OSError:
            continue
    return None


def register_installed_commands(target: typer.Typer) -> list[str]:
    """Add the commands of every installed `finer_traits.commands` entry point to target; returns their names."""
    names = []
    for ep in entry_points(group=COMMANDS_GROUP):
        ep.load()(target)
        names.append(ep.name)
    return names


# The command modules add their commands to `app` when imported; they come after `app` exists, which is why
# these imports sit at the end. Registering at import lets `from pipeline.cli import app` (tests, CliRunner)
# see every command.
from pipeline.cli import batch, cam, db, describe, groups, parts, serve, train  # noqa: E402, F401

register_installed_commands(app)
