"""The scorer registry: a new scorer is one class and one decorator, found by create_scorer and list_scorers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from PIL import Image

from pipeline.scorers import (
    SCORERS,
    ColorScorer,
    OpenClipScorer,
    Scorer,
    TransformersClipScorer,
    create_scorer,
    list_scorers,
    register_scorer,
)
from traits.errors import ConfigError, MissingValueError, UnknownChoiceError


@pytest.fixture
def registry() -> dict:
    """The registry, restored after the test (registering is global)."""
    saved = dict(SCORERS)
    yield SCORERS
    SCORERS.clear()
    SCORERS.update(saved)


def test_builtin_scorers_are_registered() -> None:
    assert list_scorers() == ["color", "hf", "openclip"]
    assert SCORERS["colour"] is ColorScorer and SCORERS["bioclip"] is OpenClipScorer
    assert SCORERS["transformers"] is TransformersClipScorer


def test_new_scorer_is_one_class_and_one_decorator(registry: dict) -> None:
    @register_scorer("dark")
    class DarknessScorer(Scorer):
        name = "darkness"

        def __init__(self, level: float = 0.5) -> None:
            self.level = level

        @classmethod
        def from_spec(cls, arg: str, device: str | torch.device = "auto") -> DarknessScorer:
            return cls(float(arg) if arg else 0.5)

        def score(self, crops: Sequence[Image.Image], phrases: Sequence[str]) -> torch.Tensor:
            return torch.full((len(crops), len(phrases)), self.level)

    assert "darkness" in list_scorers() and "dark" not in list_scorers()
    scorer = create_scorer("darkness:0.25")
    assert isinstance(scorer, DarknessScorer) and scorer.level == 0.25
    assert isinstance(create_scorer("DARK"), DarknessScorer)
    assert create_scorer(scorer) is scorer
    assert scorer.score([Image.new("RGB", (8, 8))], ["dark wing"]).tolist() == [[0.25]]


def test_taken_names_are_refused(registry: dict) -> None:
    with pytest.raises(ValueError, match="taken"):
        @register_scorer()
        class Another(ColorScorer):
            name = "color"


def test_spec_errors_have_their_kind() -> None:
    with pytest.raises(UnknownChoiceError):
        create_scorer("sonar")
    with pytest.raises(UnknownChoiceError):
        create_scorer("color:extra")
    with pytest.raises(MissingValueError):
        create_scorer("hf")
    assert issubclass(UnknownChoiceError, ConfigError)
