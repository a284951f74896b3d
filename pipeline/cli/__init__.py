"""The finer-traits command line (typer). Each command lives in its own module and only calls the library."""

from __future__ import annotations

import sys

import click
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
    from pipeline.cli import train  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app and prints user errors without tracebacks."""
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except FinerTraitsError as exc:
        err_console.print(f"[bold red]error[/] {exc}", highlight=False)
        sys.exit(2)
    except click.exceptions.Abort:
        err_console.print("Interrupted.")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("Interrupted: work done so far is kept; run the same command again to resume.")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


_register()
