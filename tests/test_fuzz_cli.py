"""Fuzzing the command line (issue 19): random commands, options and hostile files through the real entry point.

Every run must end with an exit code of 0, 1, 2 or 130, print no traceback, never reach the catch-all
"unexpected error" (every failure is handled where it arises) and finish in bounded time. The examples are
derandomised and few, so the test is repeatable and takes well under a minute once imports are warm.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

SECONDS_PER_CALL = 90  # a describe with a real model computes reference scores once: a few seconds, not 90
# More examples, randomised, for a deeper search: FINER_TRAITS_FUZZ_EXAMPLES=500 pytest tests/test_fuzz_cli.py
EXAMPLES = int(os.environ.get("FINER_TRAITS_FUZZ_EXAMPLES", "40"))
DERANDOMIZE = "FINER_TRAITS_FUZZ_EXAMPLES" not in os.environ
_FILES: dict[str, Path] = {}


def _hostile_files(root: Path, model: Path) -> dict[str, Path]:
    """Inputs a careless or hostile user might pass, by name."""
    rng = np.random.default_rng(0)
    files = {"missing": root / "missing.jpg", "new_out": root / "new-output", "dir": root / "folder", "pipe": root / "pipe.jpg",
             "model": model, "out_dir": root / "outputs"}
    files["dir"].mkdir()
    files["out_dir"].mkdir()
    os.mkfifo(files["pipe"])
    (root / "junk.jpg").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (root / "empty.png").write_bytes(b"")
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(root / "photo.png")
    Image.fromarray((rng.integers(0, 65535, (40, 40))).astype(np.uint16)).save(root / "gray16.png")
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(root / "tiny.png")
    (root / "bad.csv").write_bytes(b"image,species\n" + b"a.jpg,x\n" * 1200 + b"\xff\xfe,\x00\n")
    (root / "case.csv").write_text("Image,Species\nphoto.png,Vanessa atalanta\nphoto.png,Vanessa cardui\n")
    (root / "long.csv").write_text('image,species\n"' + "x" * 200_000 + '",y\n')
    (root / "garbage.sqlite").write_bytes(b"SQLite format 3\x00" + rng.integers(0, 256, 8000, dtype=np.uint8).tobytes())
    (root / "a_file").write_text("not a folder")
    fake = root / "fake-model"
    fake.mkdir()
    (fake / "card.json").write_text('{"kind": "linear_probe", "class_names": "Vanessa", "preprocess": 3}')
    (fake / "head.safetensors").write_bytes(b"\x00" * 10)
    for name in ("junk.jpg", "empty.png", "photo.png", "gray16.png", "tiny.png", "bad.csv", "case.csv", "long.csv",
                 "garbage.sqlite", "a_file"):
        files[name] = root / name
    files["fake_model"] = fake
    files["under_file"] = root / "a_file" / "inside"
    return files


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, describe_model_dir) -> dict[str, Path]:
    """The hostile files, plus a real model (the describe tests' shared one) so that checks past loading run."""
    _FILES.update(_hostile_files(tmp_path_factory.mktemp("hostile"), describe_model_dir))
    yield _FILES
    _FILES.clear()


def _path(*names: str):
    return st.sampled_from(names).map(lambda n: str(_FILES[n]))


INPUTS = ("missing", "dir", "pipe", "junk.jpg", "empty.png", "photo.png", "gray16.png", "tiny.png", "bad.csv",
          "case.csv", "long.csv", "garbage.sqlite", "a_file", "under_file")
# Outputs never land on the input names (but "dir"): a dataset synthesised there would turn later examples
# into real training runs.
OUTPUTS = ("new_out", "dir", "a_file", "under_file", "out_dir", "pipe")
MODELS = ("model", "fake_model", "missing", "a_file", "dir", "junk.jpg")
INTS = st.sampled_from(["-1", "0", "1", "2", "3", "33", "99999999999999999999999", "1e3", "x", ""])
WORDS = st.sampled_from(["Vanessa atalanta", "painted lady", "Nonexistent", "", "0", "-1", "999", "[/]",
                         "=1+1", "\x00", "é" * 300])


def _opt(name: str, values) -> st.SearchStrategy[list[str]]:
    return st.one_of(st.just([]), values.map(lambda v: [name, v]))


def _command() -> st.SearchStrategy[list[str]]:
    inp, out, model = _path(*INPUTS), _path(*OUTPUTS), _path(*MODELS)
    photo = _path("missing", "dir", "pipe", "junk.jpg", "empty.png", "gray16.png", "tiny.png", "bad.csv", "a_file",
                  "photo.png")
    device = st.sampled_from(["cpu", "auto", "cuda:99", "tpu", ""])
    scorer = st.sampled_from(["color", "nonsense", "openclip:random:NoSuchArch", "hf:/nonexistent", "openclip:"])
    out_png = _path(*OUTPUTS).map(lambda p: p + ".png")
    commands = [
        st.tuples(st.just(["train"]), inp, st.just(["--out"]), out, _opt("--image-size", INTS), _opt("--epochs", INTS),
                  _opt("--backbone", st.sampled_from(["resnet18", "nope", "vit_tiny_patch16_224"])),
                  _opt("--weights", st.one_of(st.sampled_from(["random", "hub"]), _path("junk.jpg", "pipe"))),
                  _opt("--manifest", inp)),
        st.tuples(st.just(["cam"]), photo, st.just(["--model"]), model, st.just(["--out"]), out_png,
                  _opt("--contrast", WORDS),
                  _opt("--target", WORDS), _opt("--gamma", INTS), _opt("--method", WORDS), _opt("--device", device)),
        st.tuples(st.just(["describe"]), photo, st.just(["--model"]), model, st.just(["--contrast"]), WORDS,
                  _opt("--top-k", INTS), _opt("--scorer", scorer), _opt("--expert", inp), _opt("--report", out)),
        st.tuples(st.just(["batch"]), inp, st.just(["--model"]), model, _opt("--db", inp), _opt("--workers", INTS),
                  _opt("--pairs", inp), st.just(["--no-progress"])),
        st.tuples(st.sampled_from([["db", "info"], ["db", "summary"], ["db", "errors"], ["db", "review", "list"],
                                   ["db", "review", "accept"], ["db", "review", "history"], ["db", "export"]]),
                  _opt("--db", inp), _opt("--run", INTS), st.one_of(st.just([]), INTS.map(lambda v: [v])),
                  _opt("--format", st.sampled_from(["csv", "parquet", "dwca", "xls"])), _opt("--out", out)),
        st.tuples(st.sampled_from([["synth", "species"], ["synth", "shapes"]]), out,
                  st.just(["--n-per-class", "1", "--size", "32"]), _opt("--n-species", INTS), _opt("--seed", INTS)),
        st.tuples(st.just(["synth", "tiny-clip"]), inp, out, st.just(["--max-steps", "1"]), _opt("--device", device)),
        st.tuples(st.just(["evaluate", "cams"]), st.sampled_from([["--dataset", d] for d in
                                                                  ("leeds", "synthetic-species", "bogus")]),
                  _opt("--model", model), st.just(["--data"]), inp, st.just(["--out"]), out, _opt("--limit", INTS)),
        st.tuples(st.sampled_from([[], ["--help"], ["--version"], ["nope"], ["db"], ["--debug", "db", "info"]])),
    ]
    # Mostly well-formed commands (so the checks behind parsing run), sometimes with a stray token.
    junk = st.sampled_from([[], [], [], [], ["--nope"], ["--"], ["--help"], [""], ["extra"]])

    def flatten(parts) -> list[str]:
        args: list[str] = []
        for p in parts:
            args.extend([p] if isinstance(p, str) else p)
        return args

    return st.tuples(st.one_of(*commands).map(flatten), junk).map(lambda t: t[0] + t[1])


def _run(args: list[str]) -> tuple[int, str, float]:
    from pipeline.cli import main

    def too_long(*_):
        raise TimeoutError(f"finer-traits {args} ran for more than {SECONDS_PER_CALL} s")

    out = io.StringIO()
    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(SECONDS_PER_CALL)
    start = time.monotonic()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, out.getvalue(), time.monotonic() - start


@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(args=_command())
def test_cli_survives_random_commands_and_hostile_files(hostile: dict[str, Path], args: list[str]) -> None:
    code, output, seconds = _run(args)
    assert code in (0, 1, 2, 130), f"finer-traits {args} exited {code}:\n{output[-2000:]}"
    if "--debug" not in args:  # asked for: --debug shows the traceback
        assert "Traceback" not in output, f"finer-traits {args} printed a traceback:\n{output[-3000:]}"
    assert "[FT999]" not in output, f"finer-traits {args} hit an unhandled error:\n{output[-2000:]}"
    assert seconds < SECONDS_PER_CALL


def test_the_installed_entry_point_refuses_a_named_pipe_photo_quickly(hostile: dict[str, Path]) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "describe", str(hostile["pipe"]), "--model",
                           str(hostile["model"]), "--contrast", "1", "--device", "cpu"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "not a regular file" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr + done.stdout
