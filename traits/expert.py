"""One entry point for expert trait lists: a trait CSV, a CUB attribute folder, a descriptions CSV
(scientific_name + description, like the Leeds species.csv) or already-loaded lists -> {taxon: TraitList}."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

from traits.csv_io import load_trait_csv
from traits.cub import load_cub
from traits.errors import TraitsError
from traits.model import TraitList
from traits.parse import parse_description

ExpertSource = str | Path | TraitList | Iterable[TraitList] | Mapping[str, TraitList]


def _descriptions(path: Path, group: str) -> dict[str, TraitList]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            # Column names match whatever their case or surrounding spaces ("Scientific_Name").
            reader.fieldnames = [h.strip().lower() for h in (reader.fieldnames or [])]
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise TraitsError(f"{path} is not UTF-8 text: byte {exc.start} cannot be decoded ({exc.reason}).",
                          "Save the file as UTF-8 CSV (in a spreadsheet: CSV UTF-8).") from exc
    except csv.Error as exc:
        raise TraitsError(f"{path} is not a readable CSV ({exc}).",
                          "Save it as comma-separated UTF-8 with one description per row; a cell over 128 KB is "
                          "too long for a description.") from exc
    except OSError as exc:
        raise TraitsError(f"Cannot read {path}: {exc}", "Check the path and its permissions.") from exc
    out: dict[str, TraitList] = {}
    for n, row in enumerate(rows, start=2):
        name = (row.get("scientific_name") or "").strip()
        if not name:
            raise TraitsError(f"{path} row {n}, column 'scientific_name': empty.", "Give each row a species name.")
        tl = parse_description(row.get("description") or "", name, group)
        tl.provenance = f"{path} row {n} ({tl.provenance})"
        out[name] = tl
    return out


def load_expert(source: ExpertSource, group: str = "butterfly", min_percent: float = 50.0) -> dict[str, TraitList]:
    """Load expert trait lists from any supported source, keyed by taxon (CUB: class name, min_percent cut);
    colours are read in the taxon group's palette."""
    if isinstance(source, TraitList):
        return {source.taxon: source}
    if isinstance(source, Mapping):
        return {str(k): v for k, v in source.items()}
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            if (path / "attributes.txt").is_file():
                cub = load_cub(path, group=group)
                return {c: cub.trait_list(c, min_percent) for c in cub.classes}
            raise TraitsError(f"{path} is a folder but not a CUB attribute folder (no attributes.txt).",
                              "Give a trait CSV, a descriptions CSV or a CUB attribute folder.")
        if not path.exists():
            raise TraitsError(f"Expert trait source {path} does not exist.",
                              "Give a trait CSV, a descriptions CSV or a CUB attribute folder.")
        if not path.is_file():  # a named pipe or device would block the reader
            raise TraitsError(f"Expert trait source {path} is not a regular file.",
                              "Give a trait CSV, a descriptions CSV or a CUB attribute folder.")
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                header = {h.strip().lower() for h in next(csv.reader(fh), [])}
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise TraitsError(f"Cannot read {path}: {exc}", "Give a UTF-8 CSV file.") from exc
        if {"scientific_name", "description"} <= header:
            return _descriptions(path, group)
        if {"taxon", "part", "attribute", "value"} <= header:
            return load_trait_csv(path)
        raise TraitsError(f"{path}: neither a trait CSV (taxon, part, attribute, value, text, source) nor a "
                          f"descriptions CSV (scientific_name, description); found columns {sorted(header)}.",
                          "Rename the columns to one of those two formats.")
    try:
        items = list(source)
    except TypeError:
        items = []
    if items and all(isinstance(t, TraitList) for t in items):
        return {t.taxon: t for t in items}
    raise TraitsError(f"Cannot use {type(source).__name__} as expert trait lists.",
                      "Give a path, a TraitList, a list of TraitLists or a dict taxon -> TraitList.")
