"""Hostile input (issue 19): each defect found by trying careless or hostile input has a test here."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_batch import A, B, C, FakePipeline, data, model_dir, url, write_csv  # noqa: F401 (fixtures)

from pipeline.batch import run_batch
from traits.db import TraitDB

# ---------------------------------------------------------------------------------------------------------
# Silently wrong results.

def test_batch_redescribes_a_photo_whose_label_was_corrected(data: dict, model_dir: Path, url: str) -> None:  # noqa: F811 (fixtures from test_batch)
    folder, db = data["folder"], url
    rows = [(rel, sp) for rel, sp in data["rows"]]
    wrong = [(rel, C if rel.endswith("/40.png") else sp) for rel, sp in rows]  # a Red Admiral labelled Aglais io
    first = run_batch(write_csv(folder / "m.csv", "image,species", wrong), model_dir, db, pairs=data["pairs"],
                      pipeline=FakePipeline(), progress=False)
    assert first.described == 8
    fixed = run_batch(write_csv(folder / "m.csv", "image,species", rows), model_dir, db, pairs=data["pairs"],
                      pipeline=FakePipeline(), progress=False)
    assert fixed.described == 1 and fixed.already_done == 7
    assert fixed.relabelled and "was Aglais io, now Vanessa atalanta" in fixed.relabelled[0]
    import sqlalchemy as sa

    from traits import db as t

    with TraitDB(db) as tdb, tdb.connect() as conn:
        sha = [r for r in conn.execute(sa.select(t.images.c.sha256, t.images.c.path))
               if r.path.endswith("/40.png")][0].sha256
        q = (sa.select(t.taxa.c.scientific_name).select_from(t.results)
             .join(t.images, t.images.c.id == t.results.c.image_id).join(t.taxa, t.taxa.c.id == t.results.c.taxon_id)
             .where(t.images.c.sha256 == sha))
        assert {r[0] for r in conn.execute(q)} == {A}  # the wrong species' results are gone
        label = conn.execute(sa.select(t.taxa.c.scientific_name).join(t.images, t.images.c.taxon_id == t.taxa.c.id)
                             .where(t.images.c.sha256 == sha)).scalar_one()
        assert label == A
    again = run_batch(folder / "m.csv", model_dir, db, pairs=data["pairs"], pipeline=FakePipeline(), progress=False)
    assert again.described == 0 and again.already_done == 8


def test_batch_refuses_relabelling_a_curated_photo_and_says_how(data: dict, model_dir: Path, url: str) -> None:  # noqa: F811 (fixtures from test_batch)
    from traits.review import set_status

    folder, db = data["folder"], url
    rows = list(data["rows"])
    wrong = [(rel, C if rel.endswith("/40.png") else sp) for rel, sp in rows]
    run_batch(write_csv(folder / "m.csv", "image,species", wrong), model_dir, db, pairs=data["pairs"],
              pipeline=FakePipeline(), progress=False)
    with TraitDB(db) as tdb:
        import sqlalchemy as sa

        from traits import db as t

        with tdb.connect() as conn:
            ids = [r[0] for r in conn.execute(
                sa.select(t.trait_assertions.c.id).join(t.taxa, t.taxa.c.id == t.trait_assertions.c.taxon_id)
                .where(t.taxa.c.scientific_name == C))]
        set_status(tdb, ids[:1], "accepted", curator="tester")
    fixed = run_batch(write_csv(folder / "m.csv", "image,species", rows), model_dir, db, pairs=data["pairs"],
                      pipeline=FakePipeline(), progress=False)
    assert fixed.described == 0
    [err] = [e for e in fixed.failed if e["image_path"].endswith("/40.png")]
    assert "was described as Aglais io" in err["message"] and "new --db" in err["message"]


def test_batch_describes_a_photo_whose_content_changed(data: dict, model_dir: Path, tmp_path: Path) -> None:  # noqa: F811 (fixtures from test_batch)
    import numpy as np
    from PIL import Image

    db = f"sqlite:///{tmp_path / 'content.sqlite'}"
    run_batch(data["manifest"], model_dir, db, pairs=data["pairs"], pipeline=FakePipeline(), progress=False)
    Image.fromarray(np.full((16, 16, 3), 45, np.uint8)).save(data["folder"] / data["rows"][0][0])
    again = run_batch(data["manifest"], model_dir, db, pairs=data["pairs"], pipeline=FakePipeline(), progress=False)
    assert again.described == 1 and again.already_done == 7


def test_two_batches_on_one_run_do_not_both_claim_a_photo(data: dict, model_dir: Path, tmp_path: Path) -> None:  # noqa: F811 (fixtures from test_batch)
    db = f"sqlite:///{tmp_path / 'two.sqlite'}"
    other: dict = {}

    def racer(item, outcome):  # a second batch writes the next photos before this one gets to them
        if not other:
            other["report"] = run_batch(data["manifest"], model_dir, db, pairs=data["pairs"],
                                        pipeline=FakePipeline(), progress=False)

    first = run_batch(data["manifest"], model_dir, db, pairs=data["pairs"], pipeline=FakePipeline(), progress=False,
                      on_item=racer)
    assert other["report"].described == 7  # the racer found one photo stored and described the other seven
    assert first.described == 1 and first.already_done == 7
    with TraitDB(db) as tdb:
        assert tdb.counts()["results"] == first.results_written + other["report"].results_written


def _exif_photo(path: Path, orientation: int) -> None:
    import numpy as np
    from PIL import Image

    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # stored: red left half, blue right half
    arr[:, 20:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_is_applied_wherever_a_photo_is_read(tmp_path: Path) -> None:
    import numpy as np

    from pipeline.batch import _image_size
    from pipeline.images import load_image
    from pipeline.models.preprocess import Preprocess

    photo = tmp_path / "phone.jpg"
    _exif_photo(photo, 6)  # 6: rotate 90 degrees clockwise to display
    img = load_image(photo)
    assert img.size == (20, 40)  # displayed portrait, not the stored landscape
    arr = np.asarray(img).astype(int)
    assert arr[2, 10, 0] > 200 and arr[-3, 10, 2] > 200  # red on top, blue at the bottom, as the user sees it
    assert _image_size(photo) == (20, 40)
    x = Preprocess(size=(40, 20)).image_to_tensor(photo)  # training, CAMs and inference share this
    assert x[0, 2, 10] > x[2, 2, 10] and x[2, -3, 10] > x[0, -3, 10]


def test_no_module_opens_photos_around_the_one_loader() -> None:
    root = Path(__file__).resolve().parents[1] / "pipeline"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "images.py" and "Image.open(" in p.read_text()]
    assert offenders == [], f"photos must be read through pipeline.images (EXIF, size checks): {offenders}"


def _alarm(seconds: int):
    import signal

    def fail(*_):
        raise TimeoutError(f"blocked for more than {seconds} s")

    signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)


def test_a_named_pipe_is_refused_as_a_photo_instead_of_blocking(tmp_path: Path) -> None:
    import os
    import signal

    from pipeline.errors import BadImageError
    from pipeline.images import load_image

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    _alarm(10)
    try:
        with pytest.raises(BadImageError, match="not a regular file"):
            load_image(fifo)
    finally:
        signal.alarm(0)


@pytest.fixture(scope="module")
def trained_model(describe_model_dir: Path) -> Path:
    return describe_model_dir  # the session's shared describe model (tests/conftest.py)


def test_grayscale_photos_warn_and_keep_colour_traits_out(trained_model: Path, synthetic_species_dir: Path,
                                                          tmp_path: Path, one_torch_thread) -> None:
    import numpy as np
    import pandas as pd
    from PIL import Image

    from pipeline.describe import NO_COLOUR_WARNING, Pipeline
    from pipeline.images import is_achromatic, load_image

    m = pd.read_csv(synthetic_species_dir / "manifest.csv")
    row = m[m["split"] == "test"].iloc[0]
    photo = synthetic_species_dir / row["image"]
    contrast = [s for s in sorted(m["species"].unique()) if s != row["species"]][0]
    rgb = load_image(photo)
    gray8 = rgb.convert("L")
    gray16 = Image.fromarray(np.asarray(gray8).astype(np.uint16) * 257).convert("I;16")
    flat = gray8.convert("RGB")  # colour file, no chroma
    assert not is_achromatic(rgb) and all(is_achromatic(load_image(x)) for x in (gray8, gray16, flat))
    pipe = Pipeline.load(trained_model, scorer="color", device="cpu")
    colour = pipe.describe(rgb, contrast, target_species=row["species"], top_k=8)
    assert NO_COLOUR_WARNING not in colour.warnings and any(t.trait.attribute == "colour" for t in colour.traits)
    for img in (gray8, gray16, flat):
        r = pipe.describe(img, contrast, target_species=row["species"], top_k=8)
        assert NO_COLOUR_WARNING in r.warnings
        assert [t.trait.attribute for t in r.traits if t.trait.attribute == "colour"] == []


def _tiny_set(folder: Path) -> list[str]:
    import numpy as np
    from PIL import Image

    names = []
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(folder / f"p{i}.png")
        names.append(f"p{i}.png")
    return names


def test_training_manifest_with_one_photo_under_two_species_reports_the_conflict(tmp_path: Path) -> None:
    from pipeline.datasets import read_dataset
    from pipeline.errors import DatasetError

    p = _tiny_set(tmp_path)
    manifest = write_csv(tmp_path / "m.csv", "image,species", [(p[0], A), (p[1], A), (p[2], B), (p[3], B), (p[0], B)])
    with pytest.raises(DatasetError, match=r"(?s)p0.png: Vanessa atalanta, Vanessa cardui.*delete the others"):
        read_dataset(tmp_path, manifest)
    # Identical rows are only duplicates: skipped and listed, not a conflict.
    write_csv(tmp_path / "m.csv", "image,species", [(p[0], A), (p[1], A), (p[2], B), (p[3], B), (p[0], A)])
    assert [why for _, why in read_dataset(tmp_path, manifest).skipped] == ["duplicate row"]


def test_manifest_and_descriptions_columns_match_whatever_their_case(tmp_path: Path) -> None:
    from pipeline.datasets import read_dataset
    from traits.expert import load_expert

    p = _tiny_set(tmp_path)
    manifest = write_csv(tmp_path / "m.csv", "Image, Scientific_Name", [(p[0], A), (p[1], A), (p[2], B), (p[3], B)])
    assert sorted(read_dataset(tmp_path, manifest).species) == [A, B]
    desc = tmp_path / "species.csv"
    desc.write_text('Scientific_Name,Description\nVanessa atalanta,"Above, black with red bands across FW."\n')
    lists = load_expert(desc)
    assert list(lists) == [A] and lists[A].traits


@pytest.mark.parametrize("size", [-5, 0, 1, 31])
def test_train_refuses_image_sizes_the_backbone_cannot_use(size: int) -> None:
    from pipeline.errors import ConfigError
    from pipeline.models.backbones import create_backbone

    with pytest.raises(ConfigError, match="image-size"):
        create_backbone("efficientnet_lite0", weights="random", image_size=size)
    assert create_backbone("efficientnet_lite0", weights="random", image_size=32).preprocess.size == (32, 32)


@pytest.mark.parametrize("what", ["bad byte after 8 KB", "very long field"])
def test_descriptions_csv_damage_is_a_clear_error(tmp_path: Path, what: str) -> None:
    from traits.errors import TraitsError
    from traits.expert import load_expert

    desc = tmp_path / "species.csv"
    body = "".join(f'Species {i},"Above, black with red bands."\n' for i in range(400)).encode()
    if what == "bad byte after 8 KB":
        data = b"scientific_name,description\n" + body + b"Bad one,\xff\xfe broken\n"
    else:
        data = b"scientific_name,description\n" + b'Long one,"' + b"x" * 200_000 + b'"\n'
    desc.write_bytes(data)
    with pytest.raises(TraitsError, match="UTF-8|not a readable CSV"):
        load_expert(desc)


# ---------------------------------------------------------------------------------------------------------
# The CLI boundary: no traceback reaches the user, each failure has an exit code.

def _cli(args: list[str]) -> int:
    from pipeline.cli import main

    with pytest.raises(SystemExit) as done:
        main(args)
    return done.value.code


def test_cli_turns_an_unexpected_error_into_a_short_message_with_a_log(monkeypatch, tmp_path: Path, capsys) -> None:
    import pipeline

    def broken(*a, **k):
        raise ValueError("something nobody planned for")

    monkeypatch.setattr(pipeline, "train_classifier", broken)  # what the train command calls
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("FINER_TRAITS_DEBUG", raising=False)
    assert _cli(["train", str(tmp_path), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ValueError: something nobody planned for" in err and "--debug" in err
    [log] = (tmp_path / "state" / "finer-traits" / "logs").iterdir()
    assert str(log) in err.replace("\n", "") or log.name in err
    assert "Traceback" in log.read_text() and "something nobody planned for" in log.read_text()
    assert _cli(["--debug", "train", str(tmp_path), "--out", str(tmp_path / "m")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_says_run_again_to_resume(monkeypatch, tmp_path: Path, capsys) -> None:
    import pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train_classifier", interrupted)
    assert _cli(["train", str(tmp_path), "--out", str(tmp_path / "m")]) == 130
    err = capsys.readouterr().err
    assert "run the same command again to resume" in err and "Aborted" not in err


# ---------------------------------------------------------------------------------------------------------
# Errors handled where they arise, with a message that names the problem and the fix.

@pytest.mark.parametrize("field,value", [("class_names", "Vanessa atalanta"), ("class_names", [1, 2]),
                                         ("preprocess", {"size": "big"}), ("preprocess", [224]),
                                         ("backbone", "efficientnet"), ("common_names", ["x"]), ("kind", 3)])
def test_a_model_card_field_of_the_wrong_type_is_named(tmp_path: Path, field: str, value: object) -> None:
    import json

    import torch
    from safetensors.torch import save_file

    from pipeline.errors import CheckpointError
    from pipeline.models.io import load_classifier

    card = {"kind": "linear_probe", "class_names": [A, B], "common_names": [None, None],
            "preprocess": {"size": [32, 32], "mean": [0.5] * 3, "std": [0.5] * 3}, "backbone": {"name": "efficientnet_lite0"}}
    card[field] = value
    (tmp_path / "card.json").write_text(json.dumps(card))
    save_file({"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, str(tmp_path / "head.safetensors"))
    with pytest.raises(CheckpointError, match=f"'{field}'"):
        load_classifier(tmp_path, device="cpu")


def test_predict_with_no_images_says_so(trained_model: Path) -> None:
    from pipeline.errors import BadImageError
    from pipeline.models.io import load_classifier

    clf = load_classifier(trained_model, device="cpu")
    with pytest.raises(BadImageError, match="No images"):
        clf.predict([])


def _trait_db(tmp_path: Path, inputs: dict, model: Path) -> str:
    db = f"sqlite:///{tmp_path / 'traits.sqlite'}"
    run_batch(inputs["manifest"], model, db, pairs=inputs["pairs"], pipeline=FakePipeline(), progress=False)
    return db


@pytest.mark.parametrize("args", [["db", "summary", "--run", "99999999999999999999999"],
                                  ["db", "errors", "--run", "99999999999999999999999"],
                                  ["db", "review", "accept", "99999999999999999999999"],
                                  ["db", "review", "history", "-5"]])
def test_huge_or_negative_ids_are_usage_errors(data: dict, model_dir: Path, tmp_path: Path, capsys,  # noqa: F811
                                               args: list[str]) -> None:
    db = _trait_db(tmp_path, data, model_dir)
    assert _cli([*args, "--db", db]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_huge_ids_through_the_python_api_are_a_clear_error(data: dict, model_dir: Path,  # noqa: F811
                                                           tmp_path: Path) -> None:
    from pipeline.errors import FinerTraitsError
    from traits.review import set_status

    with TraitDB(_trait_db(tmp_path, data, model_dir)) as tdb:
        with pytest.raises(FinerTraitsError, match="too large"):
            tdb.check_run(10**30)
        with pytest.raises(FinerTraitsError, match="too large"):
            set_status(tdb, [10**30], "accepted", curator="x")


def test_a_garbage_sqlite_file_is_a_database_error(data: dict, model_dir: Path, tmp_path: Path,  # noqa: F811
                                                   capsys) -> None:
    import random

    db = _trait_db(tmp_path, data, model_dir)
    path = tmp_path / "traits.sqlite"
    raw = path.read_bytes()
    rng = random.Random(0)
    path.write_bytes(raw[:100] + bytes(rng.randrange(256) for _ in range(len(raw) - 100)))
    for args in (["db", "info"], ["db", "summary"], ["db", "export", "-f", "csv", "-o", str(tmp_path / "x.csv")]):
        assert _cli([*args, "--db", db]) == 2
        err = capsys.readouterr().err
        assert "FT020" in err and "Traceback" not in err
    assert _cli(["batch", str(data["manifest"]), "--model", str(model_dir), "--db", db, "--no-progress"]) == 2


def test_a_file_where_a_folder_is_expected_is_named(tmp_path: Path, capsys) -> None:
    from pipeline.errors import ConfigError
    from traits.io import make_folder

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=f"{blocker} is a file"):
        make_folder(blocker / "model")
    assert _cli(["synth", "species", str(blocker / "out"), "--n-per-class", "1", "--size", "32"]) == 2
    assert _cli(["train", str(tmp_path), "--out", str(blocker)]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "Traceback" not in err and err.count("is a file, not a folder") == 2


def test_export_on_a_full_disk_keeps_the_old_file_and_says_so(data: dict, model_dir: Path,  # noqa: F811
                                                              tmp_path: Path, monkeypatch) -> None:
    import errno

    import pandas as pd

    from pipeline.errors import FinerTraitsError
    from traits.export import export

    out = tmp_path / "traits.csv"
    out.write_text("old\n")
    with TraitDB(_trait_db(tmp_path, data, model_dir)) as tdb:
        def full(self, path, *a, **k):
            Path(path).write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(pd.DataFrame, "to_csv", full)
        with pytest.raises(FinerTraitsError, match="No space left on device"):
            export(tdb, "csv", out)
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".traits")] == []


def test_batch_workers_die_with_their_parent_after_kill_9(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    # A parent that starts two spawn workers the way batch does, keeps them busy, and prints their pids.
    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing as mp, os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from pipeline.batch import die_with_parent\n"
        "def busy(_):\n"
        "    print(os.getpid(), flush=True)\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(2, mp_context=mp.get_context('spawn'), initializer=die_with_parent,\n"
        "                               initargs=(os.getpid(), 0.2))\n"
        "    futures = [pool.submit(busy, i) for i in range(2)]\n"
        "    time.sleep(120)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        workers = [int(parent.stdout.readline()) for _ in range(2)]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in workers if _alive(pid)]
        assert alive == [], f"workers {alive} outlived their killed parent"
    finally:
        for pid in [parent.pid, *locals().get("workers", [])]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by init) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


# ---------------------------------------------------------------------------------------------------------
# Smaller gaps.

def test_csv_exports_neutralise_formulas_but_parquet_keeps_the_text(tmp_path: Path) -> None:
    import csv

    import pandas as pd
    from db_helpers import make_result

    from traits.db import ImageRecord
    from traits.export import export

    result = make_result(A, B, [("forewing", "colour", "red"), ("hindwing", "pattern", "banded")])
    result["traits"][0]["phrase"] = '=HYPERLINK("http://evil.example","click")'
    result["traits"][1]["phrase"] = "@SUM(A1:A9)"
    with TraitDB(tmp_path / "t.sqlite") as tdb:
        run = tdb.start_run({"x": 1}, classifier="m")
        tdb.write_image_results(run.id, ImageRecord("ab" * 32, "-1+1.jpg", A), [result])
        export(tdb, "csv", tmp_path / "t.csv")
        export(tdb, "parquet", tmp_path / "t.parquet")
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["phrase"] for r in rows] == ["'=HYPERLINK(\"http://evil.example\",\"click\")", "'@SUM(A1:A9)"]
    assert rows[0]["image_path"] == "'-1+1.jpg"
    assert [r["direction"] for r in rows] == ["+", "-"] and float(rows[0]["score"]) == pytest.approx(0.4)
    raw = pd.read_parquet(tmp_path / "t.parquet")
    assert raw["phrase"].iloc[1] == "@SUM(A1:A9)" and raw["image_path"].iloc[0] == "-1+1.jpg"


def test_model_folder_files_share_one_permission_policy(tmp_path: Path) -> None:
    import os
    import stat

    import torch

    from pipeline.models.backbones import create_backbone
    from pipeline.models.classifier import LinearProbeClassifier
    from pipeline.models.io import save_classifier

    bb = create_backbone("efficientnet_lite0", weights="random", image_size=32)
    clf = LinearProbeClassifier(bb.model, torch.nn.Linear(bb.num_features, 2), [A, B], None, bb.preprocess)
    old = os.umask(0o022)
    try:
        out = save_classifier(clf, tmp_path / "m")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {"head.safetensors": 0o644, "card.json": 0o644}


def test_a_refused_pickled_checkpoint_keeps_pytorchs_warning_and_suggests_no_download(tmp_path: Path) -> None:
    import argparse

    import torch

    from pipeline.errors import CheckpointError
    from pipeline.models.backbones import read_state_dict
    from pipeline.models.openclip import load_open_clip

    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2), "args": argparse.Namespace(lr=1)}, path)
    for load in (lambda: read_state_dict(path), lambda: load_open_clip(f"ViT-B-32@{path}")):
        with pytest.raises(CheckpointError) as err:
            load()
        text = str(err.value)
        assert "arbitrary code execution" in text and "argparse.Namespace" in text
        assert "download" not in text.lower() and "\x1b[" not in text


def test_named_pipes_are_refused_wherever_a_file_is_read(tmp_path: Path) -> None:
    import os
    import signal

    from pipeline.errors import FinerTraitsError
    from pipeline.models.backbones import read_state_dict
    from traits.csv_io import load_trait_csv
    from traits.expert import load_expert

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    _alarm(20)
    try:
        for read in (lambda: load_trait_csv(fifo), lambda: load_expert(fifo), lambda: read_state_dict(fifo),
                     lambda: TraitDB(fifo)):
            with pytest.raises(FinerTraitsError, match="not a regular file"):
                read()
    finally:
        signal.alarm(0)


def test_absurd_epochs_are_refused_instead_of_training_for_ever(tmp_path: Path, capsys) -> None:
    from pipeline.errors import ConfigError
    from pipeline.train import train_classifier

    with pytest.raises(ConfigError, match="epochs"):
        train_classifier(tmp_path, tmp_path / "m", epochs=10**23)
    assert _cli(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--epochs", "99999999999999999999999"]) == 2
