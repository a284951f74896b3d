"""`finer-traits groups`: the taxon groups (traits/vocab/groups/*.json) that --taxon-group accepts."""

from __future__ import annotations

import typer

from pipeline.cli import app
from traits.vocab import load_vocab


@app.command("groups")
def groups() -> None:
    """List the taxon groups --taxon-group accepts, one line each (a new group is a new file: docs/taxon-groups.md)."""
    vocab = load_vocab()
    width = max(len(name) for name in vocab.groups)
    for name, g in vocab.groups.items():
        typer.echo(f"{name:<{width}}  {g.description}")
    folder = next(iter(vocab.groups.values())).path
    typer.echo(f"\nGroup files: {folder.parent if folder else '-'} (format: docs/taxon-groups.md)")
