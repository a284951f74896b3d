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


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the finer-traits version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logging."),
) -> None:
    """Find the visible traits that tell a species apart from a similar one."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if version:
        typer.echo(f"finer-traits {__version__}")
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app and prints user errors without tracebacks."""
    try:
        app(args=argv, prog_name="finer-traits")
    except FinerTraitsError as exc:
        err_console.print(f"[bold red]error[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("Interrupted. Work saved so far is kept; run the same command again to resume.")
        sys.exit(130)


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
from pipeline.cli import batch, cam, db, describe, groups, train  # noqa: E402, F401

register_installed_commands(app)
