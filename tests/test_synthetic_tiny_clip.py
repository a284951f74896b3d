"""The tiny offline CLIP: captions, loss, a few seconds of training, and the open_clip local-folder round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evaluation.synthetic import tiny_clip as tc
from evaluation.synthetic.species import PARTS


@pytest.fixture(scope="module")
def tiny_clip_dir(synthetic_species_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_clip") / "clip"
    return tc.train_tiny_clip(synthetic_species_dir, out, max_steps=10, batch_size=32, variants=1, device="cpu",
                              threads=1, progress=False)


def test_caption_variants():
    assert "orange band on the forewing" in tc.caption_variants("forewing band", "colour", "orange",
                                                                "orange band across the forewing")
    assert "a hindwing with a tail" in tc.caption_variants("hindwing tail", "presence", "present", "a tail on the hindwing")
    assert "no tail on the hindwing" in tc.caption_variants("hindwing tail", "presence", "absent",
                                                            "hindwing without a tail")


def test_layout_crops_are_cut_as_describe_cuts_them():
    from PIL import Image

    from evaluation.synthetic.draw import Nuisance
    from evaluation.synthetic.species import DESIGNS, render_species

    rgb, labels = render_species(DESIGNS[4], 128, np.random.default_rng(0), Nuisance.none())  # Caudia caudata
    from pipeline.scorers.clip import CROP_PADS

    crops = tc.layout_crops(Image.fromarray(rgb), labels, list(PARTS.values()))
    parts = [p for p, _ in crops]
    n = len(CROP_PADS)  # every framing describe() scores
    assert n == 3 and parts.count("forewing band") == 2 * n and parts.count("body") == n
    # per side: the hindwing alone (colour phrases) and with its tail (presence), as describe() cuts them
    assert parts.count("hindwing") == 4 * n
    band = [c for p, c in crops if p == "forewing band"]
    assert not np.array_equal(band[0], band[1])  # the framings differ
    rgb, labels = render_species(DESIGNS[5], 128, np.random.default_rng(0), Nuisance.none())  # Caudia ecaudata
    parts = [p for p, _ in tc.layout_crops(Image.fromarray(rgb), labels, list(PARTS.values()))]
    assert parts.count("hindwing") == 2 * n  # no tail: the two crop keys give one extent per side
    assert all(c.shape == (tc.CROP_SIZE, tc.CROP_SIZE, 3) for _, c in crops)
    assert tc.layout_crops(Image.fromarray(rgb), np.zeros_like(labels), list(PARTS.values())) == []
    # Laid on another outline (as describe() estimates it, here with a blob below the organism), the crops that
    # reach down (a hindwing with its tail's box) are framed differently; the forewing band's are not.
    blob = labels > 0
    hind = np.isin(labels, [i for i, n in PARTS.items() if n == "hindwing"])
    ys, xs = np.nonzero(hind)
    x = int(np.percentile(xs[xs < np.median(np.nonzero(blob)[1])], 50))  # under the left hindwing
    blob[ys.max():min(ys.max() + 12, blob.shape[0]), x:x + 3] = True  # thin, as a tail: the core box stays
    default = tc.layout_crops(Image.fromarray(rgb), labels, list(PARTS.values()))
    other = tc.layout_crops(Image.fromarray(rgb), labels, list(PARTS.values()), organism=blob)
    parts_other = [p for p, _ in other]
    # the left hindwing with its tail's box is now a crop of its own (3 framings), as for a tailed species
    assert parts_other.count("hindwing") == parts.count("hindwing") + n
    for name in ("forewing band", "body", "hindwing margin"):
        assert all(np.array_equal(a, b) for a, b in zip([c for p, c in default if p == name],
                                                       [c for p, c in other if p == name], strict=True))


def test_captions_attach_absence_to_the_host_part(synthetic_species_dir):
    traits = tc._read_csv(synthetic_species_dir / "traits.csv")
    caps = tc.build_captions(traits, list(PARTS.values()))
    hind = {caps.captions[i] for i in caps.positives[("Caudia ecaudata", "hindwing")]}
    assert "hindwing without a tail" in hind and "a hindwing with a tail" not in hind
    tail = {caps.captions[i] for i in caps.positives[("Caudia caudata", "hindwing tail")]}
    assert {"a tail on the hindwing", "a hindwing with a tail", "long tail on the hindwing"} <= tail
    band = {caps.captions[i] for i in caps.positives[("Synthia rubra", "forewing band")]}
    assert band == {"red band across the forewing", "red forewing band", "a red forewing band", "red band on the forewing"}


def test_value_groups_hold_the_values_species_differ_in(synthetic_species_dir):
    traits = tc._read_csv(synthetic_species_dir / "traits.csv")
    caps = tc.build_captions(traits, list(PARTS.values()))
    words = [[{caps.captions[i] for i in ids} for ids in g] for g in caps.value_groups]
    tail = next(g for g in words if any("hindwing without a tail" in v for v in g))
    present = next(i for i, v in enumerate(tail) if "a hindwing with a tail" in v)
    assert len(tail) == 2 and "no tail on the hindwing" in tail[1 - present]
    # The absence is a target on the whole hindwing (where it is judged), with the 'absent' value.
    g = words.index(tail)
    assert (g, 1 - present) in caps.value_targets[("Caudia ecaudata", "hindwing")]
    assert (g, present) in caps.value_targets[("Caudia caudata", "hindwing")]
    # Each group has two values or more, and no wording stands for two values of one group.
    assert all(len(grp) >= 2 and len(set.union(*grp)) == sum(map(len, grp)) for grp in words)


def test_value_loss_prefers_the_true_value():
    txt = torch.nn.functional.normalize(torch.eye(4)[:, :4] + 0.1, dim=-1)  # captions 0, 1: value A; 2, 3: value B
    groups = [[[0, 1], [2, 3]]]
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]), dim=-1)
    right = torch.tensor([[0], [1]])
    scale = torch.tensor(10.0)
    good = tc.value_loss(img, txt, right, groups, scale)
    bad = tc.value_loss(img, txt, 1 - right, groups, scale)
    assert float(good) < 0.01 < 5.0 < float(bad)
    # Crops without a value in any group contribute nothing.
    assert float(tc.value_loss(img, txt, torch.full((2, 1), -1), groups, scale)) == 0.0
    mixed = tc.value_loss(img, txt, torch.tensor([[0], [-1]]), groups, scale)
    assert abs(float(mixed) - float(tc.value_loss(img[:1], txt, right[:1], groups, scale))) < 1e-6


def test_hard_negative_captions_name_the_same_part_with_other_colours(synthetic_species_dir):
    traits = tc._read_csv(synthetic_species_dir / "traits.csv")
    caps = tc.build_captions(traits, list(PARTS.values()))
    used = {i for ids in caps.positives.values() for i in ids}
    negatives = {c for i, c in enumerate(caps.captions) if i not in used}
    band_values = {r["value"] for r in traits if r["part"] == "forewing band" and r["attribute"] == "colour"}
    # Every palette colour no species shows on the band is a negative-only caption; the colours shown are not.
    assert {"blue forewing band", "a purple forewing band", "pink band on the forewing"} <= negatives
    assert not any(f"{v} forewing band" in negatives for v in band_values)
    # A wing's colour negatives leave out colours its sub-parts show (a forewing crop does show the orange band).
    assert "orange forewing" not in negatives and "blue forewing" in negatives
    plain = tc.build_captions(traits, list(PARTS.values()), hard_negatives=False)
    assert plain.captions == caps.captions[:len(plain.captions)] and plain.positives == caps.positives


def test_multi_positive_loss_prefers_aligned_embeddings():
    torch.manual_seed(0)
    txt = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    pos = torch.zeros(4, 5, dtype=torch.bool)
    pos[0, 0] = pos[1, 1] = pos[2, 2] = pos[3, [3, 4]] = True
    aligned = torch.nn.functional.normalize(txt[:4] + 0.01 * torch.randn(4, 8), dim=-1)
    shuffled = aligned[[1, 2, 3, 0]]
    scale = torch.tensor(10.0)
    good = tc.multi_positive_clip_loss(aligned, txt, pos, scale)
    bad = tc.multi_positive_clip_loss(shuffled, txt, pos, scale)
    assert float(good) < float(bad) - 1.0
    # Loss lower bound: image->text can at best spread mass evenly over the two positives of row 3.
    assert float(good) > 0


def test_training_lowers_the_loss_and_writes_an_open_clip_folder(tiny_clip_dir):
    files = {p.name for p in tiny_clip_dir.iterdir()}
    assert {"open_clip_config.json", "open_clip_model.safetensors", "training.json"} <= files
    cfg = json.loads((tiny_clip_dir / "open_clip_config.json").read_text())
    assert cfg["model_cfg"] == tc.TINY_CLIP_CONFIG and cfg["preprocess_cfg"]["size"] == tc.CROP_SIZE
    report = json.loads((tiny_clip_dir / "training.json").read_text())
    losses = report["losses"]
    assert report["steps"] == 10 and len(losses) == 10
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.15, losses
    ev = report["eval"]
    assert ev["n_crops"] > 50 and 0.0 <= ev["top1"] <= ev["top3"] <= 1.0
    assert ev["top3"] > 3 / ev["n_phrases"]  # better than guessing, even after a few seconds


def test_local_folder_round_trip_gives_identical_embeddings(tiny_clip_dir, synthetic_species_dir):
    import open_clip
    from safetensors.torch import load_file

    from pipeline.models import load_open_clip

    bundle = load_open_clip(str(tiny_clip_dir))
    assert tuple(bundle.preprocess.size) == (tc.CROP_SIZE, tc.CROP_SIZE)
    assert np.allclose(bundle.preprocess.mean, tc.MEAN)
    reference = open_clip.CLIP(**tc.TINY_CLIP_CONFIG)
    reference.load_state_dict(load_file(str(tiny_clip_dir / "open_clip_model.safetensors")))
    reference.eval()
    images = torch.randn(3, 3, tc.CROP_SIZE, tc.CROP_SIZE)
    tokens = bundle.tokenizer(["orange band across the forewing", "a hindwing with a tail"])
    with torch.no_grad():
        assert torch.equal(bundle.model.encode_image(images), reference.encode_image(images))
        assert torch.equal(bundle.model.encode_text(tokens), reference.encode_text(tokens))
        fresh = open_clip.CLIP(**tc.TINY_CLIP_CONFIG).eval()
        assert not torch.allclose(fresh.encode_text(tokens), reference.encode_text(tokens))
    # The loaded model reproduces the held-out scores recorded at the end of training.
    traits = tc._read_csv(synthetic_species_dir / "traits.csv")
    caps = tc.build_captions(traits, list(PARTS.values()))
    test = tc.extract_crops(synthetic_species_dir, "test", PARTS, 1, np.random.default_rng(1), jitter=False)
    ev = tc.caption_retrieval(bundle.model, bundle.tokenizer, test, caps,
                              tc._read_csv(synthetic_species_dir / "pairs.csv"), torch.device("cpu"))
    recorded = json.loads((tiny_clip_dir / "training.json").read_text())["eval"]
    assert ev["top1"] == pytest.approx(recorded["top1"]) and ev["top3"] == pytest.approx(recorded["top3"])


def test_folder_declares_its_parts_and_the_scorer_judges_only_those(tiny_clip_dir, tmp_path):
    from pipeline.errors import ConfigError
    from pipeline.scorers.openclip import TRAINED_VOCABULARY, OpenClipScorer, trained_vocabulary

    parts = json.loads((tiny_clip_dir / TRAINED_VOCABULARY).read_text())["parts"]
    assert "forewing band" in parts and "hindwing margin" in parts and "hindwing band" not in parts
    scorer = OpenClipScorer(str(tiny_clip_dir), device="cpu")
    assert scorer.supports_part("forewing band") and not scorer.supports_part("hindwing band")
    assert not scorer.supports_part("wing")  # never captioned on its own
    # Per part, only the attributes it was captioned with: the band's colour, not whether there is a band.
    assert scorer.supports_trait("forewing band", "colour") and scorer.supports_trait("hindwing tail", "presence")
    assert not scorer.supports_trait("forewing band", "presence") and not scorer.supports_trait("hindwing band", "colour")
    assert trained_vocabulary("random:ViT-B-16") is None and trained_vocabulary(str(tmp_path)) is None  # none
    assert scorer.templates == ["{phrase}"]  # asked in its own words, not "a photo of ..."
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in tiny_clip_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / TRAINED_VOCABULARY).write_text("[1, 2]")
    with pytest.raises(ConfigError, match="trained-vocabulary"):
        OpenClipScorer(str(bad), device="cpu")


def test_reuse_and_bad_dataset(tiny_clip_dir, synthetic_species_dir, synthetic_shapes_dir, tmp_path):
    from pipeline.errors import DatasetError

    stamp = (tiny_clip_dir / "open_clip_model.safetensors").stat().st_mtime_ns
    again = tc.train_tiny_clip(synthetic_species_dir, tiny_clip_dir, max_steps=10, batch_size=32, variants=1,
                               device="cpu", progress=False)
    assert (again / "open_clip_model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(DatasetError, match="synth species"):
        tc.train_tiny_clip(synthetic_shapes_dir, tmp_path / "c", max_steps=1, progress=False)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("kwargs", [dict(minutes=0), dict(max_steps=0), dict(batch_size=1), dict(value_weight=-1)])
def test_bad_training_arguments(synthetic_species_dir, tmp_path, kwargs):
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError):
        tc.train_tiny_clip(synthetic_species_dir, tmp_path / "c", progress=False, **kwargs)
    assert not (tmp_path / "c").exists()


def test_missing_dataset(tmp_path):
    from pipeline.errors import DatasetError

    with pytest.raises(DatasetError, match="does not exist"):
        tc.train_tiny_clip(tmp_path / "nope", tmp_path / "c", max_steps=1, progress=False)


def test_cli_tiny_clip(synthetic_species_dir, tmp_path, capsys):
    from pipeline.cli import main

    try:
        main(["synth", "tiny-clip", str(synthetic_species_dir), str(tmp_path / "clip"), "--max-steps", "3",
              "--device", "cpu", "--report", str(tmp_path / "r.json")])
    except SystemExit as exc:
        assert not exc.code
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["steps"] == 3 and (tmp_path / "clip" / "open_clip_model.safetensors").is_file()
    assert "top-3" in capsys.readouterr().out
