"""The package structure: a light CLI start, lazy public names, and the evaluation commands found by entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

import evaluation
import pipeline
import traits
from pipeline.cli import app

HEAVY = ("torch", "timm", "open_clip", "spacy", "sqlalchemy", "pandas", "transformers", "ray")


def test_cli_start_imports_no_heavy_library() -> None:
    code = f"import sys, pipeline.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == []


@pytest.mark.parametrize("package", [pipeline, traits, evaluation], ids=lambda p: p.__name__)
def test_every_public_name_resolves(package) -> None:
    for name in package.__all__:
        assert getattr(package, name) is not None, name
        assert name in dir(package)


def test_public_function_wins_over_its_submodule() -> None:
    import pipeline.describe  # noqa: F401 - the import system now binds the submodule to the package

    assert isinstance(sys.modules["pipeline.describe"], type(sys))
    assert callable(pipeline.describe) and pipeline.describe is sys.modules["pipeline.describe"].describe


def test_evaluation_commands_come_from_the_entry_point() -> None:
    names = {group.name for group in app.registered_groups}
    assert {"evaluate", "synth", "db"} <= names
