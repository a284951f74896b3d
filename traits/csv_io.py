"""A simple user trait file: CSV with columns taxon, part, attribute, value, text, source (+ side, sex,
life_stage). Every bad row is reported with its row number and column."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from traits.errors import TraitsError
from traits.io import atomic_write
from traits.model import ATTRIBUTES, SIDES, SOURCES, Trait, TraitList
from traits.vocab import group_names, load_vocab, normalise_colour

REQUIRED = ("taxon", "part", "attribute", "value", "text", "source")
OPTIONAL = ("side", "sex", "life_stage")
MAX_ERRORS_SHOWN = 10


def _part(words: str) -> str:
    # Normalise with the first group that knows the words ('FW tip' -> 'forewing tip'); keep unknown parts.
    vocab = load_vocab()
    for group in group_names():
        part = vocab.part_vocab(group).normalise(words)
        if part:
            return part
    return " ".join(words.lower().split())


def _check_row(n: int, row: dict[str, str | None]) -> list[str]:
    errors = []
    for col in ("taxon", "part", "attribute", "value"):
        if not (row.get(col) or "").strip():
            errors.append(f"row {n}, column '{col}': empty")
    attr = (row.get("attribute") or "").strip().lower()
    if attr and attr not in ATTRIBUTES:
        errors.append(f"row {n}, column 'attribute': {attr!r} is not one of {', '.join(ATTRIBUTES)}")
    source = (row.get("source") or "").strip().lower()
    if source and source not in SOURCES:
        errors.append(f"row {n}, column 'source': {source!r} is not one of {', '.join(SOURCES)}")
    side = (row.get("side") or "").strip().lower()
    if side and side not in SIDES:
        errors.append(f"row {n}, column 'side': {side!r} is not one of {', '.join(SIDES)} (or empty)")
    if None in row:  # csv.DictReader puts surplus cells under the None key
        errors.append(f"row {n}: more cells than header columns")
    return errors


def load_trait_csv(path: str | Path) -> dict[str, TraitList]:
    """Read a trait CSV into {taxon: TraitList}; raises TraitsError listing bad rows (row and column)."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, or a named pipe that would block the read forever
        raise TraitsError(f"Trait file {path} is not a regular file.", "Give a UTF-8 CSV file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraitsError(f"Cannot read trait file {path}: {exc}", "Give a UTF-8 CSV file.") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise TraitsError(f"{path}: not a readable CSV ({exc}).", "Save the file as comma-separated UTF-8.") from exc
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise TraitsError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'}).",
                          f"The header must contain {', '.join(REQUIRED)}; optional {', '.join(OPTIONAL)}.")
    reader.fieldnames = header
    lists: dict[str, TraitList] = {}
    errors: list[str] = []
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise TraitsError(f"{path}: not a readable CSV ({exc}).", "Save the file as comma-separated UTF-8.") from exc
    for n, row in enumerate(rows, start=2):  # row 1 is the header
        row_errors = _check_row(n, row)
        if row_errors:
            errors.extend(row_errors)
            continue

        def get(col: str, row: dict = row) -> str:
            return (row.get(col) or "").strip()

        source = get("source").lower() or "csv"
        attribute = get("attribute").lower()
        value = get("value").lower()
        if attribute == "colour":
            value = normalise_colour(value) or value
        trait = Trait(_part(get("part")), attribute, value, get("value"),
                      get("side").lower() or None, get("sex").lower() or None, get("life_stage").lower() or None,
                      get("text"))
        tl = lists.setdefault(get("taxon"), TraitList(get("taxon"), [], source, str(path)))
        tl.traits.append(trait)
    if errors:
        shown = "\n  ".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise TraitsError(f"{path}: {len(errors)} problem(s):\n  {shown}{more}",
                          "Fix those cells; columns are " + ", ".join(REQUIRED + OPTIONAL) + ".")
    return lists


def save_trait_csv(lists: dict[str, TraitList] | list[TraitList], path: str | Path) -> Path:
    """Write trait lists to a CSV (atomically, see traits.io)."""
    path = Path(path)
    items = list(lists.values()) if isinstance(lists, dict) else list(lists)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(REQUIRED + OPTIONAL)
            for tl in items:
                for t in tl.traits:
                    writer.writerow([tl.taxon, t.part, t.attribute, t.value, t.text, tl.source,
                                     t.side or "", t.sex or "", t.life_stage or ""])

    return atomic_write(path, write)
