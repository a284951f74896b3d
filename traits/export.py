"""Exports of the trait database: a tidy long table (CSV, Parquet) and a Darwin Core Archive.

The tidy table has one row per trait assertion with its taxon pair, Entity-Quality trait, evidence, provenance
and current curation. The Darwin Core Archive has an Occurrence core (one row per photo) and a
MeasurementOrFact extension (one row per assertion), described by meta.xml, as GBIF and python-dwca-reader read.
"""

from __future__ import annotations

import zipfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pandas as pd
import sqlalchemy as sa

from traits.db import (
    DatabaseError,
    TraitDB,
    as_utc,
    expert_sources,
    images,
    regions,
    results,
    runs,
    taxa,
    trait_assertions,
    traits,
)
from traits.errors import MissingDependencyError, UnknownChoiceError
from traits.io import atomic_write, output_file
from traits.review import latest_curation

FORMATS = ("csv", "parquet", "dwca")
DWC = "http://rs.tdwg.org/dwc/terms/"
DC = "http://purl.org/dc/terms/"

COLUMNS = [
    "assertion_id", "run_id", "image_sha256", "image_path", "licence", "scientific_name", "contrast_scientific_name",
    "rank", "part", "attribute", "value", "side", "trait_text", "phrase", "score", "contrast_score", "direction",
    "confidence", "expert_status", "expert_source", "region_index", "x0", "y0", "x1", "y1", "region_mass",
    "region_area_fraction", "region_location", "target_probability", "uncertain", "method", "determined_date",
    "remarks", "curation_status", "curator", "curated_at", "curation_note", "curated_part", "curated_attribute",
    "curated_value", "curated_direction", "tool_version", "classifier",
    "scorer", "cam_method", "gamma",
]

# Occurrence core: (term, column of the occurrence frame).
CORE_TERMS = [
    (DWC + "occurrenceID", "occurrence_id"),
    (DWC + "basisOfRecord", "basis_of_record"),
    (DWC + "scientificName", "scientific_name"),
    (DWC + "associatedMedia", "image_path"),
    (DC + "license", "licence"),
]
MOF_TERMS = [
    (DWC + "measurementID", "measurement_id"),
    (DWC + "measurementType", "measurement_type"),
    (DWC + "measurementValue", "value"),
    (DWC + "measurementUnit", "measurement_unit"),
    (DWC + "measurementMethod", "method"),
    (DWC + "measurementDeterminedBy", "determined_by"),
    (DWC + "measurementDeterminedDate", "determined_date"),
    (DWC + "measurementRemarks", "measurement_remarks"),
]


def _assertions_query(run_id: int | None) -> sa.Select:
    """The tidy table's query: one row per trait assertion (of one run, or all), in a stable order."""
    latest = latest_curation()
    t, c = taxa.alias("t"), taxa.alias("c")
    ta = trait_assertions
    q = (sa.select(
        ta.c.id.label("assertion_id"), ta.c.determined_by_run_id.label("run_id"),
        images.c.sha256.label("image_sha256"), images.c.path.label("image_path"), images.c.licence,
        t.c.scientific_name, c.c.scientific_name.label("contrast_scientific_name"), ta.c.rank, traits.c.part,
        traits.c.attribute, traits.c.value, traits.c.side, traits.c.text.label("trait_text"), ta.c.phrase,
        ta.c.score, ta.c.contrast_score, ta.c.direction, ta.c.confidence, ta.c.expert_status,
        expert_sources.c.name.label("expert_source"), regions.c.region_index, regions.c.x0, regions.c.y0,
        regions.c.x1, regions.c.y1, regions.c.mass.label("region_mass"),
        regions.c.area_fraction.label("region_area_fraction"), regions.c.location.label("region_location"),
        results.c.target_probability, results.c.uncertain, ta.c.method, ta.c.determined_date, ta.c.remarks,
        sa.func.coalesce(latest.c.status, "pending").label("curation_status"), latest.c.curator,
        latest.c.curated_at, latest.c.note.label("curation_note"), latest.c.part.label("curated_part"),
        latest.c.attribute.label("curated_attribute"), latest.c.value.label("curated_value"),
        latest.c.direction.label("curated_direction"), runs.c.tool_version, runs.c.classifier,
        runs.c.scorer, runs.c.cam_method, runs.c.gamma)
        .select_from(ta)
        .join(results, results.c.id == ta.c.result_id)
        .join(images, images.c.id == results.c.image_id)
        .join(runs, runs.c.id == ta.c.determined_by_run_id)
        .join(traits, traits.c.id == ta.c.trait_id)
        .join(t, t.c.id == ta.c.taxon_id).join(c, c.c.id == ta.c.contrast_taxon_id)
        .outerjoin(regions, regions.c.id == ta.c.region_id)
        .outerjoin(expert_sources, expert_sources.c.id == ta.c.expert_source_id)
        .outerjoin(latest, latest.c.assertion_id == ta.c.id)
        .order_by(ta.c.determined_by_run_id, images.c.sha256, c.c.scientific_name, ta.c.rank))
    if run_id is not None:
        q = q.where(ta.c.determined_by_run_id == run_id)
    return q


def _frame(rows: list) -> pd.DataFrame:
    frame = pd.DataFrame([r._mapping for r in rows], columns=COLUMNS)
    for col in ("determined_date", "curated_at"):
        frame[col] = [_iso(v) for v in frame[col]]
    return frame


def assertions_frame(db: TraitDB, run_id: int | None = None) -> pd.DataFrame:
    """The tidy long table: one row per trait assertion (of one run, or all), in a stable order."""
    if run_id is not None:
        db.check_run(run_id)
    with db.connect() as conn:
        rows = conn.execute(_assertions_query(run_id)).all()
    return _frame(rows)


def arrow_schema() -> Any:
    """The pyarrow schema of the tidy table, from the database column types (dates as ISO text, as in CSV)."""
    import pyarrow as pa

    fields = []
    for col in _assertions_query(None).selected_columns:
        kind = col.type.python_type if not isinstance(col.type, sa.types.NullType) else str
        if col.name in ("determined_date", "curated_at"):
            kind = str
        fields.append(pa.field(col.name, {int: pa.int64(), float: pa.float64(), bool: pa.bool_()}.get(kind, pa.string())))
    return pa.schema(fields)


def assertion_tables(db: TraitDB, run_id: int | None = None, rows: int = 50_000) -> Iterator[Any]:
    """The tidy table as pyarrow tables of at most `rows` rows, streamed from the database (at least one table,
    empty when there is nothing, so a Parquet dataset always has its columns)."""
    import pyarrow as pa

    if run_id is not None:
        db.check_run(run_id)
    schema = arrow_schema()
    sent = False
    with db.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=rows).execute(_assertions_query(run_id))
        for part in result.partitions(rows):
            sent = True
            yield pa.Table.from_pandas(_frame(part), schema=schema, preserve_index=False)
    if not sent:
        yield schema.empty_table()


def _iso(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if hasattr(value, "isoformat"):
        return as_utc(value).isoformat(timespec="seconds")  # type: ignore[arg-type]
    return str(value)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as the start of a formula


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of frame whose text cells cannot run as spreadsheet formulas: a leading ' is added to them.

    Only for CSV files people open in a spreadsheet; Parquet and Darwin Core data keep the exact text. Numbers
    and the lone '+' / '-' of a direction are left alone: they cannot run anything.
    """
    def cell(value: object) -> object:
        if not isinstance(value, str) or not value.startswith(FORMULA_START) or value in ("+", "-"):
            return value
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value

    from pandas.api.types import is_object_dtype, is_string_dtype

    out = frame.copy()
    for col in out.columns:
        if is_object_dtype(out[col]) or is_string_dtype(out[col]):  # pandas 3 gives text its own dtype
            out[col] = out[col].map(cell)
    return out


def export(db: TraitDB, fmt: str, out: str | Path, run_id: int | None = None,
           assertion_ids: Collection[int] | None = None) -> Path:
    """Write the assertions (of one run, or all; only assertion_ids when given) as csv, parquet or dwca to out."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UnknownChoiceError(f"Unknown export format {fmt!r}.", f"Use one of {', '.join(FORMATS)}.")
    frame = assertions_frame(db, run_id)
    if assertion_ids is not None:  # the web app's current filter
        frame = frame[frame["assertion_id"].isin(set(assertion_ids))].reset_index(drop=True)
    out = Path(out)
    if fmt == "csv":
        return atomic_write(output_file(out), lambda p: neutralise_formulas(frame).to_csv(p, index=False))
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("Parquet export needs pyarrow.", "pip install 'finer-traits[parquet]'") from exc
        return atomic_write(output_file(out), lambda p: frame.to_parquet(p, index=False))
    if frame.empty:
        raise DatabaseError("There are no trait assertions to export" + (f" in run {run_id}." if run_id else "."),
                            "Run `finer-traits batch` first, or pick another --run.")
    return atomic_write(output_file(out), lambda p: write_dwca(frame, p))


# ---------------------------------------------------------------------------------------------------------
# Darwin Core Archive. Written by hand because it is three small text files and a zip; python-dwca-reader
# (test dependency) reads it back in the tests.

def occurrence_id(sha256: str) -> str:
    """A stable occurrenceID for a photo: its content hash."""
    return f"urn:sha256:{sha256}"


def measurement_type(part: str, attribute: str, side: str = "") -> str:
    """Entity-Quality to measurementType: 'upper forewing colour'."""
    return " ".join(x for x in (side, part, attribute) if x)


def _fmt(v: object, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "NA"
    return f"{float(v):.{digits}f}"  # type: ignore[arg-type]


def measurement_remarks(row: pd.Series) -> str:
    """The comparison behind an assertion in one line (contrast, direction, scores, expert and curation status)."""
    parts = [f"versus {row.contrast_scientific_name}: direction {row.direction or 'NA'}",
             f"score {_fmt(row.score)} vs contrast {_fmt(row.contrast_score)}",
             f"confidence {row.confidence or 'NA'}", f"rank {row['rank']}", f"phrase '{row.phrase or ''}'",
             f"expert {row.expert_status or 'not checked'}", f"curation {row.curation_status}"]
    corrected = [f"{k} {row[f'curated_{k}']}" for k in ("part", "attribute", "value", "direction")
                 if isinstance(row.get(f"curated_{k}"), str) and row[f"curated_{k}"]]
    if corrected:
        parts.append("curator's correction: " + ", ".join(corrected))
    if row.remarks:
        parts.append(str(row.remarks))
    return "; ".join(parts)


def _clean(v: object) -> str:
    # fieldsEnclosedBy is empty, so tabs and line breaks inside values would split fields and rows.
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    return " ".join(str(v).replace("\t", " ").splitlines())


def _table_text(frame: pd.DataFrame, terms: list[tuple[str, str]], id_col: str, header: str) -> str:
    lines = ["\t".join([header] + [term.rsplit("/", 1)[1] for term, _ in terms])]
    for _, row in frame.iterrows():
        lines.append("\t".join([_clean(row[id_col])] + [_clean(row[col]) for _, col in terms]))
    return "\n".join(lines) + "\n"


def _meta_xml(core_file: str, ext_file: str) -> str:
    def fields(terms: list[tuple[str, str]]) -> str:
        return "\n".join(f'      <field index="{i + 1}" term={quoteattr(term)}/>' for i, (term, _) in enumerate(terms))

    common = 'encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="1"'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="eml.xml">
  <core {common} rowType="{DWC}Occurrence">
    <files><location>{core_file}</location></files>
    <id index="0"/>
{fields(CORE_TERMS)}
  </core>
  <extension {common} rowType="{DWC}MeasurementOrFact">
    <files><location>{ext_file}</location></files>
    <coreid index="0"/>
{fields(MOF_TERMS)}
  </extension>
</archive>
"""


def _eml(title: str, n_rows: int) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<eml:eml xmlns:eml="eml://ecoinformatics.org/eml-2.1.1" packageId="finer-traits-export" system="finer-traits">
  <dataset>
    <title>{escape(title)}</title>
    <abstract><para>Machine-generated trait differences between similar species ({n_rows} measurements),
    from class-activation maps and vision-language phrase scoring by finer-traits. Curation status is given in
    measurementRemarks.</para></abstract>
  </dataset>
</eml:eml>
"""


def dwca_tables(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Occurrence core (one row per photo) and MeasurementOrFact rows (one per assertion) of a tidy frame."""
    mof = frame.copy()
    mof["occurrence_id"] = [occurrence_id(s) for s in mof.image_sha256]
    mof["measurement_id"] = [f"finer-traits:run{r}:assertion{a}" for r, a in zip(mof.run_id, mof.assertion_id, strict=True)]
    mof["measurement_type"] = [measurement_type(p, a, s) for p, a, s in zip(mof.part, mof.attribute, mof.side, strict=True)]
    mof["measurement_unit"] = ""
    mof["determined_by"] = [f"finer-traits {v} run {r}" for v, r in zip(mof.tool_version, mof.run_id, strict=True)]
    mof["measurement_remarks"] = [measurement_remarks(row) for _, row in mof.iterrows()]
    core = (mof[["occurrence_id", "scientific_name", "image_path", "licence"]]
            .drop_duplicates("occurrence_id").reset_index(drop=True))
    core["basis_of_record"] = "Occurrence"  # a photographed organism; the measurements say they are machine-made
    return core, mof


def write_dwca(frame: pd.DataFrame, path: Path) -> None:
    """Write a Darwin Core Archive zip (meta.xml, eml.xml, occurrence.txt, measurementorfact.txt) to path."""
    core, mof = dwca_tables(frame)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.xml", _meta_xml("occurrence.txt", "measurementorfact.txt"))
        zf.writestr("eml.xml", _eml("finer-traits trait differences", len(mof)))
        zf.writestr("occurrence.txt", _table_text(core, CORE_TERMS, "occurrence_id", "id"))
        zf.writestr("measurementorfact.txt", _table_text(mof, MOF_TERMS, "occurrence_id", "coreid"))
