"""kill -9 half way through a real `finer-traits batch`, run it again: the rows equal an uninterrupted run's."""

from __future__ import annotations

import csv
import os
import sys

import pytest
from db_helpers import kill_batch_midway, natural_rows

from pipeline.batch import run_batch
from traits.db import TraitDB

N_PHOTOS = 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two sibling synthetic species (5 photos each, 64 px), a tiny classifier, a 6-photo manifest and the pair.

    Kept this small because describe() also scores every species' reference photos (cached in the model folder).
    """
    from evaluation.synthetic import make_species
    from pipeline.train import train_classifier

    work = tmp_path_factory.mktemp("batch-kill")
    data = make_species(work / "species", n_per_species=5, image_size=64, seed=0, n_species=2, test_fraction=0.4)
    train_classifier(data, work / "model", image_size=64, epochs=30, device="cpu")
    with open(data / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    siblings = sorted({r["species"] for r in rows})
    assert len(siblings) == 2
    picked = [r for sp in siblings for r in [r for r in rows if r["species"] == sp][:N_PHOTOS // 2]]
    manifest = work / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "species"])
        for r in picked:
            w.writerow([os.path.relpath(data / r["image"], work), r["species"]])
    pairs = work / "pairs.csv"
    pairs.write_text(f"species_a,species_b\n{siblings[0]},{siblings[1]}\n")
    return {"work": work, "model": work / "model", "manifest": manifest, "pairs": pairs, "n": len(picked)}


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_rows_of_an_uninterrupted_run(trained: dict) -> None:
    from pipeline.describe import Pipeline

    work, n = trained["work"], trained["n"]
    pipe = Pipeline.load(trained["model"], scorer="color", device="cpu")
    reference = work / "reference.sqlite"
    full = run_batch(trained["manifest"], trained["model"], reference, pairs=trained["pairs"], pipeline=pipe,
                     progress=False)
    assert full.failed == [] and full.described == n

    killed = work / "killed.sqlite"
    cmd = [sys.executable, "-c", "import sys; from pipeline.cli import main; main(sys.argv[1:])", "batch",
           str(trained["manifest"]), "--model", str(trained["model"]), "--db", str(killed),
           "--pairs", str(trained["pairs"]), "--no-progress"]
    stored = kill_batch_midway(cmd, killed)
    assert 2 <= stored < n, f"kill landed after {stored} of {n} photos"

    again = run_batch(trained["manifest"], trained["model"], killed, pairs=trained["pairs"], pipeline=pipe,
                      progress=False)
    assert again.resumed and again.already_done == stored and again.described == n - stored
    with TraitDB(killed) as db, TraitDB(reference) as ref:
        got, want = natural_rows(db), natural_rows(ref)
        assert got == want
        assert len(got["results"]) == n and len(got["assertions"]) > n and len(got["runs"]) == 1
        assert got["runs"][0][-1] == "finished"
