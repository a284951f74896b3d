"""Batch runs into the trait database: resuming, per-photo errors, bad input; with a stand-in describe pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from db_helpers import db_url, make_result, natural_rows
from PIL import Image
from safetensors.torch import save_file

from pipeline.batch import read_manifest, run_batch
from pipeline.errors import BadImageError, CheckpointError, ConfigError, DatasetError
from pipeline.species import SpeciesIndex
from traits.db import DatabaseError, TraitDB

A, B, C, D = "Vanessa atalanta", "Vanessa cardui", "Aglais io", "Aglais urticae"
SPECIES = [A, B, C, D]
TRAITS = [("forewing", "colour", "red"), ("hindwing", "pattern", "banded"), ("forewing tip", "pattern", "spotted"),
          ("body", "colour", "brown"), ("hindwing", "colour", "blue")]
# Solid photo colours; the stand-in pipeline derives everything from the grey level, so results are repeatable.
LEVELS = {A: [40, 50, 60], B: [70, 80], C: [90, 100], D: [110]}


class FakeClassifier:
    """Probabilities that favour the class nearest in grey level (enough for nearest-species contrasts)."""

    def __init__(self) -> None:
        self.species = SpeciesIndex(SPECIES)
        self.class_names = self.species.class_names

    def index(self, name: str) -> int:
        return self.species.index(name)

    def predict(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        level = float(np.asarray(image).mean())
        centres = torch.tensor([50.0, 75.0, 95.0, 110.0])
        probs = torch.softmax(-(centres - level).abs() / 5, 0)[None]
        return probs, probs.argmax(-1)


class FakePipeline:
    """Stands in for pipeline.describe.Pipeline: deterministic results from the photo's grey level."""

    def __init__(self, fail_levels: tuple[int, ...] = ()) -> None:
        self.classifier = FakeClassifier()
        self.fail_levels = fail_levels
        self.calls: list[tuple[int, str]] = []
        self.sides: dict[int, str | None] = {}

    def describe(self, image, contrast_species, target_species=None, top_k=5, side=None):
        from traits.vocab import normalise_side

        level = int(round(float(np.asarray(image).mean())))
        self.calls.append((level, contrast_species))
        self.sides[level] = normalise_side(side)  # as Pipeline.describe: a bad side is this photo's error
        if level in self.fail_levels:
            raise BadImageError(f"Photo with grey level {level} cannot be described.", "Use another photo.")
        k = 1 + level % 3
        traits = [TRAITS[(level // 10 + i) % len(TRAITS)] for i in range(min(k, top_k))]
        result = make_result(target_species, contrast_species, traits, seed=level,
                             expert=["confirmed" if i == 0 else None for i in range(len(traits))])
        result["provenance"]["level"] = level
        return result


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model folder that passes read_card (the stand-in pipeline does the describing)."""
    out = tmp_path / "model"
    out.mkdir()
    save_file({"weight": torch.zeros(len(SPECIES), 4), "bias": torch.zeros(len(SPECIES))}, str(out / "head.safetensors"))
    (out / "card.json").write_text(json.dumps({"kind": "linear_probe", "class_names": SPECIES, "preprocess": {}}))
    return out


def write_photos(folder: Path) -> list[tuple[str, str]]:
    """(relative path, species) for every level in LEVELS, as 16x16 PNGs under folder/photos."""
    rows = []
    for sp, levels in LEVELS.items():
        for level in levels:
            rel = f"photos/{sp.replace(' ', '_')}/{level}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(folder / rel)
            rows.append((rel, sp))
    return rows


def write_csv(path: Path, header: str, rows: list[tuple]) -> Path:
    path.write_text("\n".join([header] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


@pytest.fixture
def data(tmp_path: Path) -> dict:
    folder = tmp_path / "data"
    rows = write_photos(folder)
    manifest = write_csv(folder / "manifest.csv", "image,species,licence,site", [(*r, "CC0", "Leeds") for r in rows])
    pairs = write_csv(tmp_path / "pairs.csv", "species_a,species_b", [(A, B), (C, D), (C, B)])
    return {"folder": folder, "rows": rows, "manifest": manifest, "pairs": pairs}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from db_url(request.param, tmp_path)


def test_interrupted_batch_resumes_with_the_same_rows(data: dict, model_dir: Path, url: str, tmp_path: Path) -> None:
    reference = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    full = run_batch(data["manifest"], model_dir, reference, pairs=data["pairs"], pipeline=FakePipeline(),
                     progress=False)
    # B and C have two contrasts each (B: A, C; C: D, B): 8 photos, 12 describe calls.
    assert (full.described, full.results_written, full.failed) == (8, 12, [])

    def stop_after_three(item, outcome, seen=[]):  # noqa: B006 - a counter local to this run
        seen.append(item)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(data["manifest"], model_dir, url, pairs=data["pairs"], pipeline=FakePipeline(), progress=False,
                  on_item=stop_after_three)
    with TraitDB(url) as db:
        assert db.counts()["results"] == 3 and db.runs()[0]["status"] == "interrupted"
    pipe = FakePipeline()
    again = run_batch(data["manifest"], model_dir, url, pairs=data["pairs"], pipeline=pipe, progress=False)
    assert again.resumed and again.run_id == full.run_id == 1
    assert (again.already_done, again.described) == (3, 5)
    assert len(pipe.calls) == 12 - 3  # only photos not stored yet were described (the 3 done were A's)
    with TraitDB(url) as db, TraitDB(reference) as ref:
        assert natural_rows(db) == natural_rows(ref)
        counts = db.counts()
        assert counts == ref.counts()
        assert (counts["images"], counts["results"], counts["image_errors"]) == (8, 12, 0)
        assert counts["trait_assertions"] == counts["regions"] > 12
        run = db.runs()[0]
        # The run's provenance comes from its first photo (grey 40), not from the resumed part (grey 70).
        assert (run["cam_method"], run["gamma"], run["provenance"]["level"]) == ("finer", 1.0, 40)
        assert run["status"] == "finished" and run["ended_at"] is not None
    # A third run has nothing left to do and changes nothing.
    third = run_batch(data["manifest"], model_dir, url, pairs=data["pairs"], pipeline=FakePipeline(), progress=False)
    assert (third.already_done, third.described) == (8, 0)
    with TraitDB(url) as db, TraitDB(reference) as ref:
        assert natural_rows(db) == natural_rows(ref)


def test_bad_rows_are_recorded_and_retried_never_fatal(data: dict, model_dir: Path, tmp_path: Path) -> None:
    folder = data["folder"]
    rows = [r + ("",) for r in data["rows"]]
    bad = rows + [
        ("photos/missing.png", A, ""),                          # line 10: missing file
        ("photos/Vanessa_atalanta/40.png", A, ""),              # 11: exact duplicate of line 2
        ("photos/Vanessa_cardui/70.png", "vanessa_cardui", ""),  # 12: line 5 again, the name spelled otherwise
        ("photos/Aglais_urticae/110.png", C, ""),               # 13: line 9's photo labelled another species
        ("photos/copy_of_50.png", A, ""),                       # 14: same content as line 3
        ("photos/Vanessa_atalanta/60.png", "Vanesa atalanta", ""),  # 15: unknown (misspelt) species
    ]
    (folder / "photos/copy_of_50.png").write_bytes((folder / "photos/Vanessa_atalanta/50.png").read_bytes())
    manifest = write_csv(folder / "bad.csv", "image,species,note", bad)
    db = f"sqlite:///{tmp_path / 'bad.sqlite'}"
    report = run_batch(manifest, model_dir, db, pairs=data["pairs"], pipeline=FakePipeline(fail_levels=(80,)),
                       progress=False)
    by_line = {e["manifest_row"]: e for e in report.failed}
    assert set(by_line) == {6, 9, 10, 13, 15}
    assert "does not exist" in by_line[10]["message"] and by_line[10]["error_code"] == "FT003"
    assert "listed with different species (line 9: Aglais urticae; line 13: Aglais io)" in by_line[9]["message"]
    assert by_line[13]["message"] == by_line[9]["message"]
    assert "Did you mean 'Vanessa atalanta'" in by_line[15]["message"] and by_line[15]["error_code"] == "FT002"
    assert "grey level 80 cannot be described" in by_line[6]["message"]  # the stand-in pipeline fails on it
    assert sorted(report.duplicates) == sorted(["line 11 repeats line 2 (photos/Vanessa_atalanta/40.png)",
                                                "line 12 repeats line 5 (photos/Vanessa_cardui/70.png)",
                                                "line 14 is the same photo as line 3 (photos/copy_of_50.png)"])
    # 8 photos minus the conflicting one (110) and the one that failed (80); photos of B and C have two contrasts.
    assert (report.described, report.results_written) == (6, 9)
    with TraitDB(db) as tdb:
        assert tdb.runs()[0]["status"] == "finished"
        assert tdb.counts()["images"] == 6
    # Fix the missing file and re-run: its error is gone, the describe failure is retried, nothing doubles.
    (folder / "photos/missing.png").write_bytes((folder / "photos/Vanessa_atalanta/40.png").read_bytes())
    again = run_batch(manifest, model_dir, db, pairs=data["pairs"], pipeline=FakePipeline(fail_levels=(80,)),
                      progress=False)
    assert {e["manifest_row"] for e in again.failed} == {6, 9, 13, 15}
    assert "line 10 is the same photo as line 2 (photos/missing.png)" in again.duplicates
    assert [e["attempts"] for e in again.failed if e["manifest_row"] == 6] == [2]
    assert (again.already_done, again.described) == (6, 0)
    with TraitDB(db) as tdb:
        assert tdb.counts()["results"] == 9
    # Once the pipeline copes with photo 80, the last retry succeeds and clears its error.
    last = run_batch(manifest, model_dir, db, pairs=data["pairs"], pipeline=FakePipeline(), progress=False)
    assert last.described == 1 and {e["manifest_row"] for e in last.failed} == {9, 13, 15}


def test_nearest_species_are_the_contrast_without_pairs(data: dict, model_dir: Path, tmp_path: Path) -> None:
    pipe = FakePipeline()
    report = run_batch(data["manifest"], model_dir, tmp_path / "near.sqlite", pipeline=pipe, progress=False)
    assert report.described == 8 and report.results_written == 8
    contrasts = dict(pipe.calls)
    # Grey 40 is nearest A's centre; the next nearest class is B (75) -> contrast B. Grey 110 (D) -> C (95).
    assert contrasts[40] == B and contrasts[110] == C and contrasts[70] == A
    with TraitDB(tmp_path / "near.sqlite") as db:
        assert db.runs()[0]["configuration"]["contrast"] == "nearest"


def test_a_side_column_gives_each_photo_its_side(data: dict, model_dir: Path, tmp_path: Path) -> None:
    """A manifest's 'side' column reaches describe per photo (empty: not known); a bad value fails that photo
    alone, recorded with the message that names the values."""
    sides = {40: "dorsal", 50: "under", 60: "", 70: "sideways"}
    rows = [(rel, sp, sides.get(int(Path(rel).stem), "")) for rel, sp in data["rows"]]
    manifest = write_csv(data["folder"] / "sides.csv", "image,species,side", rows)
    pipe = FakePipeline()
    report = run_batch(manifest, model_dir, tmp_path / "s.sqlite", pairs=data["pairs"], pipeline=pipe, progress=False)
    assert pipe.sides[40] == "upper" and pipe.sides[50] == "under" and pipe.sides[60] is None
    assert 70 not in pipe.sides and report.described == 7
    [err] = report.failed
    assert err["image_path"].endswith("70.png") and "Unknown side 'sideways'" in err["message"]


def test_the_taxon_group_is_checked_first_and_kept_in_the_run(data: dict, model_dir: Path, tmp_path: Path) -> None:
    from traits.errors import UnknownGroupError

    with pytest.raises(UnknownGroupError, match="Did you mean 'bird'"):
        run_batch(data["manifest"], model_dir, tmp_path / "g.sqlite", pipeline=FakePipeline(), progress=False,
                  taxon_group="brid")
    assert not (tmp_path / "g.sqlite").exists()
    run_batch(data["manifest"], model_dir, tmp_path / "g.sqlite", pairs=data["pairs"], pipeline=FakePipeline(),
              progress=False, taxon_group="Bird")
    with TraitDB(tmp_path / "g.sqlite") as db:
        assert db.runs()[0]["configuration"]["taxon_group"] == "bird"


def test_bad_inputs_fail_fast_and_write_nothing(data: dict, model_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "never.sqlite"
    no_species = write_csv(data["folder"] / "cols.csv", "image,label", [("photos/x.png", A)])
    with pytest.raises(DatasetError, match="needs an 'image' column and a 'species'"):
        run_batch(no_species, model_dir, db, pipeline=FakePipeline(), progress=False)
    with pytest.raises(DatasetError, match="does not exist"):
        run_batch(tmp_path / "nope.csv", model_dir, db, pipeline=FakePipeline(), progress=False)
    bad_pairs = write_csv(tmp_path / "bad_pairs.csv", "species_a,species_b", [(A, "Vanessa virginiensis")])
    with pytest.raises(DatasetError, match="line 2: Unknown species 'Vanessa virginiensis'"):
        run_batch(data["manifest"], model_dir, db, pairs=bad_pairs, pipeline=FakePipeline(), progress=False)
    with pytest.raises(CheckpointError):
        run_batch(data["manifest"], tmp_path / "no-model", db, pipeline=FakePipeline(), progress=False)
    with pytest.raises(ConfigError, match="supports SQLite and PostgreSQL"):
        run_batch(data["manifest"], model_dir, "oracle://me@host/db", pipeline=FakePipeline(), progress=False)
    assert not db.exists()


def test_read_only_database_stops_with_a_clear_message_and_keeps_rows(data: dict, model_dir: Path,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "ro.sqlite"
    run_batch(data["manifest"], model_dir, path, pairs=data["pairs"], pipeline=FakePipeline(), progress=False)
    with TraitDB(path) as db:
        before = natural_rows(db)
    more = write_csv(data["folder"] / "more.csv", "image,species", [("photos/Aglais_io/90.png", C)])
    with pytest.raises(DatabaseError, match="read-only"):
        run_batch(more, model_dir, f"sqlite:///file:{path}?mode=ro&uri=true", pipeline=FakePipeline(), progress=False)
    with TraitDB(path) as db:
        assert natural_rows(db) == before


def test_manifest_paths_are_relative_to_the_manifest(data: dict) -> None:
    rows = read_manifest(data["manifest"])
    assert rows[0].path == (data["folder"] / data["rows"][0][0]).resolve() and rows[0].path.is_file()
    assert rows[0].licence == "CC0" and rows[0].metadata == {"site": "Leeds"} and rows[0].line == 2


def test_cli_export_summary_and_review(data: dict, model_dir: Path, tmp_path: Path, capsys) -> None:
    from dwca.read import DwCAReader

    from pipeline.cli import main

    db = tmp_path / "cli.sqlite"
    run_batch(data["manifest"], model_dir, db, pairs=data["pairs"], pipeline=FakePipeline(), progress=False)
    url = f"sqlite:///{db}"
    with TraitDB(db) as tdb:
        n = tdb.counts()["trait_assertions"]
    assert n > 12
    def cli(*args: str) -> int:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        return exc.value.code

    assert cli("db", "export", "--format", "dwca", "--out", str(tmp_path / "x.zip"), "--db", url, "--run", "1") == 0
    with DwCAReader(str(tmp_path / "x.zip")) as archive:
        assert sum(len(core.extensions) for core in archive) == n
    assert cli("db", "review", "accept", "1", "2", "--db", url, "--by", "ana") == 0
    assert cli("db", "review", "reject", "2", "--db", url, "--by", "ben", "--note", "not visible") == 0
    assert cli("db", "summary", "--db", url, "--out", str(tmp_path / "summary.csv")) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert f"Wrote {n} trait assertions" in out and "2 of 2 assertions marked accepted" in out
    assert "1 of 1 assertions marked rejected" in out and "Vanessa atalanta vs Vanessa cardui" in out
    from traits.review import history

    with TraitDB(db) as tdb:
        assert [h["status"] for h in history(tdb, 2)] == ["accepted", "rejected"]
    assert cli("db", "export", "--format", "csv", "--out", str(tmp_path / "y.csv"),
               "--db", str(tmp_path / "none.sqlite")) == 2
    assert "does not exist" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "none.sqlite").exists()


def test_a_parquet_manifest_stores_what_the_same_csv_manifest_stores(data: dict, model_dir: Path,
                                                                      tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(*r, "CC0", "Leeds") for r in data["rows"]] + [("photos/missing.png", A, "CC0", "Leeds")]
    csv_manifest = write_csv(data["folder"] / "all.csv", "image,species,licence,site", rows)
    parquet = data["folder"] / "all.parquet"
    columns = list(zip(*rows, strict=True))
    pq.write_table(pa.table({"image": columns[0], "species": columns[1], "licence": columns[2], "site": columns[3]}),
                   parquet, row_group_size=3)  # several record batches
    assert read_manifest(parquet) == [
        type(r)(r.line - 1, r.image, r.path, r.species, r.licence, r.metadata) for r in read_manifest(csv_manifest)]
    reports = {}
    for name, manifest in (("csv", csv_manifest), ("parquet", parquet)):
        reports[name] = run_batch(manifest, model_dir, tmp_path / f"{name}.sqlite", pairs=data["pairs"],
                                  pipeline=FakePipeline(), progress=False)
    assert [e["manifest_row"] for e in reports["csv"].failed] == [10]
    assert [e["manifest_row"] for e in reports["parquet"].failed] == [9]  # Parquet rows count from 1, no header
    with TraitDB(tmp_path / "csv.sqlite") as a, TraitDB(tmp_path / "parquet.sqlite") as b:
        want, got = natural_rows(a), natural_rows(b)
    # The same rows; errors differ only in the row number (index 3).
    assert [e[:3] + e[4:] for e in got.pop("errors")] == [e[:3] + e[4:] for e in want.pop("errors")]
    assert got == want


def test_parquet_results_are_the_runs_assertions_and_replaced_whole(data: dict, model_dir: Path,
                                                                     tmp_path: Path) -> None:
    import pandas as pd

    from traits.export import COLUMNS, assertions_frame

    out = tmp_path / "results"
    out.mkdir()
    (out / "stale.parquet").write_bytes(b"from an earlier run")
    db = tmp_path / "pq.sqlite"
    report = run_batch(data["manifest"], model_dir, db, pairs=data["pairs"], pipeline=FakePipeline(), progress=False,
                       parquet=out)
    assert report.parquet == out and not (out / "stale.parquet").exists()
    got = pd.read_parquet(out).sort_values("assertion_id").reset_index(drop=True)
    with TraitDB(db) as tdb:
        want = assertions_frame(tdb, report.run_id).sort_values("assertion_id").reset_index(drop=True)
    assert list(got.columns) == COLUMNS and len(got) == len(want) > 12
    for col in ("assertion_id", "image_sha256", "scientific_name", "contrast_scientific_name", "trait_text",
                "direction", "determined_date", "curation_status"):
        assert got[col].tolist() == want[col].tolist(), col
    assert got["score"].tolist() == pytest.approx(want["score"].tolist())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".results")] == []  # no staging left behind


def test_the_progress_bar_counts_every_manifest_row(data: dict, model_dir: Path, tmp_path: Path, capsys) -> None:
    for _ in range(2):  # a fresh run, then a resumed one where every row is already done
        run_batch(data["manifest"], model_dir, tmp_path / "bar.sqlite", pairs=data["pairs"], pipeline=FakePipeline())
        err = capsys.readouterr().err
        assert "8/8" in err and "9/8" not in err
