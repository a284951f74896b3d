"""`finer-traits parts fit`: locate a taxon group's parts with part concepts fitted on a model's training photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.cli import app

console = Console()
parts_app = typer.Typer(help="Part concepts (Deep Feature Factorization) that locate parts on photos in any pose.",
                        no_args_is_help=True)
app.add_typer(parts_app, name="parts")


@parts_app.command("fit")
def fit(
    model_dir: Annotated[Path, typer.Argument(help="Model folder from `finer-traits train` (parts.safetensors and "
                                                   "parts.json are written into it).")],
    expert: Annotated[Path, typer.Option(help="Per-species part colours that name the concepts: a CUB attribute "
                                              "folder (e.g. ../shared/data/cub-attributes) or an expert trait "
                                              "list.")],
    k: Annotated[int | None, typer.Option(min=2, max=64, help="Number of concepts (default: the taxon group's, "
                                                               "birds 10).")] = None,
    tap: Annotated[str | None, typer.Option(help="Backbone block whose activations are factorised (default: the "
                                                 "group's, blocks.4 = stride 16).")] = None,
    data: Annotated[Path | None, typer.Option(help="Training photos (default: those the model card names).")] = None,
    device: Annotated[str, typer.Option(help="'cpu', 'cuda', 'auto' ...")] = "cpu",
) -> None:
    """Fit k part concepts on the model's training photos and name them by the expert's part colours.

    A part is located only where a concept agrees with the expert's colours for that part clearly better than the
    whole organism does; every other part stays unlocated and its traits name the whole organism. describe and
    batch use the parts automatically once the model folder has them (docs/taxon-groups.md)."""
    from pipeline.parts import PARTS_CARD, fit_model_parts

    locator = fit_model_parts(model_dir, expert, data=data, k=k, tap=tap, device=device, progress=True)
    naming = locator.info.get("naming", {})
    for part, row in naming.items():
        if row.get("located"):
            console.print(f"  {part:<12} concepts {row['concepts']}  agreement gain {row['gain']:+.4f} "
                          f"(se {row['gain_se']:.4f})", highlight=False)
    unlocated = [p for p, row in naming.items() if not row.get("located")]
    console.print(f"Located {len(locator.parts)} parts with {locator.k} concepts at {locator.tap}; unlocated "
                  f"(traits say the whole organism): {', '.join(unlocated) or 'none'}.", highlight=False)
    console.print(f"Saved to {model_dir / PARTS_CARD}. describe and batch now use them.", highlight=False)
