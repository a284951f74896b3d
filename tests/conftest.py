"""Shared pytest fixtures: small synthetic datasets with ground truth (layout: see evaluation.synthetic)."""

from __future__ import annotations

import os
from pathlib import Path

# Tests must never download: make every Hugging Face client fail fast instead of reaching for the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest


@pytest.fixture(scope="session")
def synthetic_species_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 species (3 sibling pairs) x 12 images of 96 px, seed 0: 9 train + 3 test per species. Read-only: copy
    it before changing anything."""
    from evaluation.synthetic import make_species

    return make_species(tmp_path_factory.mktemp("synthetic") / "species", n_per_species=12, image_size=96, seed=0)


@pytest.fixture(scope="session")
def synthetic_shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 shape classes x 12 images of 96 px, seed 0: 9 train + 3 test per class. Read-only: copy it before
    changing anything."""
    from evaluation.synthetic import make_shapes

    return make_shapes(tmp_path_factory.mktemp("synthetic") / "shapes", n_per_class=12, image_size=96, seed=0)


@pytest.fixture(scope="session")
def describe_model_dir(synthetic_species_dir, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One classifier per test session on the synthetic species, shared by the describe test modules (training is
    the slow part). Read-only."""
    from pipeline.train import train_classifier

    out = tmp_path_factory.getbasetemp() / "describe-model"
    if not (out / "card.json").is_file():
        train_classifier(synthetic_species_dir, out, image_size=64, epochs=100, device="cpu")
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny models on one torch thread.

    On a shared 2-core machine two torch threads spin against other jobs: tiny models then run ~30x slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
