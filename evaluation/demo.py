"""`python -m evaluation.demo` (what `make demo` runs): the main job end to end, offline.

1. generates the synthetic butterfly-like species (sibling pairs that differ in known traits),
2. trains the default classifier (EfficientNet-Lite0 features + a linear head) on them,
3. describes a test photo against its sibling species, prints the paragraph and the trait table, and writes a
   one-file HTML report to demo-output/,
4. when the Leeds butterflies are present (FINER_TRAITS_DATA or ../shared/data), does the same for a Vanessa
   atalanta photo against Vanessa cardui, checked against the field-guide descriptions.
Everything is cached in demo-output/: a second run reuses the dataset, the model and the reference scores.
Set FINER_TRAITS_LEEDS_MODEL=MODEL_DIR to reuse a Leeds model instead of training one in step 4.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
from rich.console import Console

from evaluation.synthetic import make_species
from pipeline.describe import Pipeline
from pipeline.paths import leeds_root
from pipeline.report import write_report
from pipeline.train import train_classifier

console = Console()
LEEDS_MODEL_ENV = "FINER_TRAITS_LEEDS_MODEL"  # reuse a trained Leeds model folder instead of training one


def _step(text: str) -> None:
    console.print(f"[bold cyan]>>[/] {text}", highlight=False)


def _train(data: Path, out: Path, manifest: Path | None = None, image_size: int | None = None) -> Path:
    if (out / "card.json").is_file() and (out / "head.safetensors").is_file():
        console.print(f"   reusing the trained model in {out}")
        return out
    rep = train_classifier(data, out, manifest=manifest, device="auto", image_size=image_size)
    acc = "n/a" if rep.accuracy is None else f"{rep.accuracy:.3f}"
    console.print(f"   trained on {rep.n_train} photos of {len(rep.species)} species in {rep.seconds:.0f} s; "
                  f"test accuracy {acc}")
    return out


def _show(result, report: Path) -> None:
    console.print()
    console.print(f"[bold]{result.text}[/]", highlight=False)
    for t in result.traits:
        status = f", expert: {t.expert_status}" if t.expert_status else ""
        console.print(f"   {t.rank}. {t.phrase} ({'more' if t.direction == '+' else 'less'} than the contrast; "
                      f"{t.confidence}, effect {t.effect:+.1f} sd{status})", highlight=False)
    if result.controls:
        best = max(abs(c.effect) for c in result.controls)
        console.print(f"   random-phrase controls: largest |effect| {best:.2f}", highlight=False)
    for w in result.warnings:
        console.print(f"   [yellow]note[/] {w}", highlight=False)
    write_report(result, report)
    console.print(f"   HTML report: {report}")


def synthetic_demo(out: Path, n_per_species: int = 30, image_size: int = 128) -> None:
    """Steps 1-3 on the synthetic species."""
    _step(f"1. Generating the synthetic species ({n_per_species} photos each) in {out / 'synthetic-species'}")
    data = make_species(out / "synthetic-species", n_per_species=n_per_species, image_size=image_size, seed=0)
    pairs = pd.read_csv(data / "pairs.csv")
    console.print(f"   {len(pairs)} sibling pairs, designed differences: "
                  + "; ".join(f"{r.species_a} vs {r.species_b}: {r.part} {r.attribute} {r.value_a}/{r.value_b}"
                              for r in pairs.itertuples()), highlight=False)
    _step("2. Training the default classifier (EfficientNet-Lite0 features + linear head)")
    model = _train(data, out / "synthetic-model", image_size=image_size)
    pair = pairs.iloc[0]
    manifest = pd.read_csv(data / "manifest.csv")
    photo = data / manifest[(manifest["species"] == pair.species_a) & (manifest["split"] == "test")].iloc[0]["image"]
    _step(f"3. Describing {photo.name} ({pair.species_a}) against its sibling {pair.species_b}"
          " (first run: scores reference photos of both species, then cached)")
    pipe = Pipeline.load(model, scorer="color", expert=data / "traits.csv", progress=True)
    result = pipe.describe(photo, pair.species_b, target_species=pair.species_a)
    console.print(f"   the designed difference is: {pair.part} {pair.attribute} {pair.value_a} "
                  f"(vs {pair.value_b})", highlight=False)
    _show(result, out / "synthetic-report.html")


def leeds_demo(out: Path, leeds: Path) -> None:
    """Step 4 on the Leeds butterflies: a Vanessa atalanta photo against Vanessa cardui."""
    _step(f"4. Leeds butterflies found in {leeds}: training on them (or reusing the model), then describing a "
          "Vanessa atalanta photo against Vanessa cardui")
    existing = os.environ.get(LEEDS_MODEL_ENV)
    if existing:
        console.print(f"   using the Leeds model in {existing} ({LEEDS_MODEL_ENV})")
        model = Path(existing)
    else:
        model = _train(leeds / "manifest.csv", out / "leeds-model", manifest=None)
    manifest = pd.read_csv(leeds / "manifest.csv")
    rows = manifest[(manifest["scientific_name"] == "Vanessa atalanta") & (manifest["split"] == "test")]
    photo = leeds / rows.iloc[0]["image"]
    pipe = Pipeline.load(model, scorer="color", expert=leeds / "species.csv", progress=True)
    result = pipe.describe(photo, "Vanessa cardui", target_species="Vanessa atalanta")
    _show(result, out / "leeds-report.html")


def main(argv: list[str] | None = None) -> None:
    """Run the demo; --out picks the output folder, --skip-leeds skips step 4."""
    ap = argparse.ArgumentParser(prog="python -m evaluation.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("demo-output"))
    ap.add_argument("--skip-leeds", action="store_true")
    ap.add_argument("--n-per-species", type=int, default=30)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    synthetic_demo(args.out, n_per_species=args.n_per_species)
    leeds = None if args.skip_leeds else leeds_root()
    if leeds is not None:
        leeds_demo(args.out, leeds)
    elif not args.skip_leeds:
        console.print("   (Leeds butterflies not found: set FINER_TRAITS_DATA to run step 4.)")
    console.print(f"\nDone in {time.perf_counter() - start:.0f} s. Outputs are in {args.out.resolve()}.")


if __name__ == "__main__":
    from traits.errors import FinerTraitsError

    try:
        main()
    except FinerTraitsError as exc:
        console.print(f"[bold red]error[/] {exc}", highlight=False)
        raise SystemExit(2) from None
