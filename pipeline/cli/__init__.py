"""The finer-traits command line (typer). Each command lives in its own module and only calls the library."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from pipeline.errors import FinerTraitsError

app = typer.Typer(
    name="finer-traits",
    help="Find the visible traits that tell a species apart from a similar one, and check them against expert lists.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    # Importing a command module adds its commands to `app`.
    from pipeline.cli import batch, cam, db, describe, evaluate, synth, train  # noqa: F401


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the finer-traits version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logging."),
) -> None:
    """Find the visible traits that tell a species apart from a similar one."""
    import logging

    from pipeline import __version__

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


# Register at import so `from pipeline.cli import app` (tests, CliRunner) sees every command.
_register()
