"""CAM metrics pinned on small hand-computed cases and on a tiny classifier whose evidence region is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from evaluation import baselines
from evaluation import cam_metrics as cm
from pipeline.models import Classifier, Preprocess

# Tiny models: one torch thread (see the one_torch_thread fixture in conftest).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class RowClassifier(Classifier):
    """Two classes on 2x2 images: z0 = sum of channel 0 in the top row, z1 = in the bottom row."""

    def __init__(self) -> None:
        super().__init__(["Top row", "Bottom row"], None, Preprocess(size=(2, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0, 0].sum(-1), x[:, 0, 1].sum(-1)], dim=1)


class RegionClassifier(Classifier):
    """Class 1 is evidenced only by bright channel-0 pixels inside a fixed square in the top-left corner."""

    def __init__(self, size: int = 16) -> None:
        super().__init__(["Background", "Object"], None, Preprocess(size=(size, size)))
        region = torch.zeros(size, size)
        region[1:7, 1:7] = 1.0
        self.register_buffer("region", region)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inside = (x[:, 0] * self.region).sum((-1, -2)) / self.region.sum()
        z1 = 4.0 * inside - 2.0
        return torch.stack([torch.zeros_like(z1), z1], dim=1)


def softmax2(a: float, b: float) -> tuple[float, float]:
    ea, eb = math.exp(a), math.exp(b)
    return ea / (ea + eb), eb / (ea + eb)


def row_image() -> torch.Tensor:
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    return x


def region_batch(n: int = 4, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(n, 3, size, size, generator=g)
    mask = torch.zeros(n, size, size)
    mask[:, 1:7, 1:7] = 1.0
    x[:, 0] += mask
    return x, mask


# ---------------------------------------------------------------- relative drop, deletion, average drop

def test_relative_drop_matches_hand_computation_on_linear_model():
    clf, x = RowClassifier(), row_image()
    maps = torch.tensor([[[0.1, 0.9], [0.3, 0.2]]])  # top-right pixel (value 2) ranks first
    rd = cm.relative_drop(clf, x, maps, target=0, contrast=1, fractions=(0.25, 0.5))
    p0, p1 = softmax2(3.0, 7.0)
    q0, q1 = softmax2(1.0, 7.0)  # 25 %: one pixel (x=2) removed
    assert rd[0.25].item() == pytest.approx((p0 - q0) - (p1 - q1), abs=1e-6)
    r0, r1 = softmax2(1.0, 4.0)  # 50 %: also the 0.3-ranked pixel (x=3) removed
    assert rd[0.5].item() == pytest.approx((p0 - r0) - (p1 - r1), abs=1e-6)
    assert rd[0.25].item() == pytest.approx(0.031026, abs=1e-5)


def test_relative_drop_averages_references_and_defaults_to_top_predictions():
    clf, x = RowClassifier(), row_image()
    maps = torch.tensor([[[0.1, 0.9], [0.3, 0.2]]])
    explicit = cm.relative_drop(clf, x, maps, target=0, contrast=torch.tensor([[1]]), fractions=(0.25,))
    default = cm.relative_drop(clf, x, maps, target=0, contrast=None, fractions=(0.25,))
    assert explicit[0.25].item() == pytest.approx(default[0.25].item())


def test_deletion_auc_is_trapezoid_of_hand_probabilities():
    clf, x = RowClassifier(), row_image()
    maps = torch.tensor([[[0.1, 0.9], [0.3, 0.2]]])  # order: x=2, x=3, x=4, x=1
    dele, ins = cm.deletion_insertion_auc(clf, x, maps, target=0, steps=4)
    # class-0 logit / class-1 logit after removing 0..4 pixels in map order
    left = [(3, 7), (1, 7), (1, 4), (1, 0), (0, 0)]
    p = [softmax2(a, b)[0] for a, b in left]
    expected = sum((p[i] + p[i + 1]) / 2 * 0.25 for i in range(4))
    assert dele.item() == pytest.approx(expected, abs=1e-6)
    kept = [(0, 0), (2, 0), (2, 3), (2, 7), (3, 7)]
    p = [softmax2(a, b)[0] for a, b in kept]
    assert ins.item() == pytest.approx(sum((p[i] + p[i + 1]) / 2 * 0.25 for i in range(4)), abs=1e-6)


def test_average_drop_and_increase_on_scaled_input():
    clf, x = RowClassifier(), row_image()
    maps = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])  # x * M -> top row 1, 1; bottom row 0, 0
    drop, inc = cm.average_drop_increase(clf, x, maps, target=0)
    y, o = softmax2(3, 7)[0], softmax2(2, 0)[0]
    assert inc.item() == 1.0 and o > y
    assert drop.item() == 0.0
    drop1, inc1 = cm.average_drop_increase(clf, x, maps, target=1)
    y1, o1 = softmax2(3, 7)[1], softmax2(2, 0)[1]
    assert drop1.item() == pytest.approx((y1 - o1) / y1, abs=1e-6) and inc1.item() == 0.0


def test_batching_does_not_change_results():
    from pipeline.models import LinearProbeClassifier, create_backbone

    torch.manual_seed(0)
    bb = create_backbone("resnet10t", weights="random", image_size=32)
    clf = LinearProbeClassifier(bb.model, torch.nn.Linear(bb.num_features, 3), ["A a", "B b", "C c"], None,
                                bb.preprocess).eval()
    x = torch.randn(5, 3, 32, 32)
    maps = baselines.random_map(5, 32, 32, seed=3)
    a = cm.relative_drop(clf, x, maps, target=[0, 1, 2, 0, 1], contrast=[1, 2, 0, 2, 0], batch_size=2)
    b = cm.relative_drop(clf, x, maps, target=[0, 1, 2, 0, 1], contrast=[1, 2, 0, 2, 0], batch_size=64)
    for r in a:
        assert torch.allclose(a[r], b[r], atol=1e-6)


# ---------------------------------------------------------------- ROAD

def test_road_imputation_of_one_pixel_is_weighted_mean_of_neighbours():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 5, 5, generator=g)
    remove = torch.zeros(1, 5, 5, dtype=torch.bool)
    remove[0, 2, 2] = True
    remove[0, 0, 0] = True  # a corner: only 3 neighbours, weights renormalised
    out = cm.noisy_linear_impute(x, remove, noise=0.0)
    v = x[0]
    direct = v[:, 1, 2] + v[:, 3, 2] + v[:, 2, 1] + v[:, 2, 3]
    diag = v[:, 1, 1] + v[:, 1, 3] + v[:, 3, 1] + v[:, 3, 3]
    assert torch.allclose(out[0, :, 2, 2], direct / 6 + diag / 12, atol=1e-6)
    corner = (v[:, 0, 1] / 6 + v[:, 1, 0] / 6 + v[:, 1, 1] / 12) / (1 / 6 + 1 / 6 + 1 / 12)
    assert torch.allclose(out[0, :, 0, 0], corner, atol=1e-6)
    kept = ~remove[0]
    assert torch.equal(out[0][:, kept], x[0][:, kept])


def test_road_imputation_of_constant_neighbourhood_is_that_constant_and_noise_is_seeded():
    x = torch.full((2, 3, 8, 8), 0.7)
    remove = torch.zeros(2, 8, 8, dtype=torch.bool)
    remove[:, 2:6, 2:6] = True  # a 4x4 hole: a coupled system, every solution value must be 0.7
    assert torch.allclose(cm.noisy_linear_impute(x, remove, noise=0.0), x, atol=1e-9)
    a = cm.noisy_linear_impute(x, remove, noise=0.01, seed=5)
    b = cm.noisy_linear_impute(x, remove, noise=0.01, seed=5)
    assert torch.equal(a, b) and 0.002 < (a - x)[:, :, 2:6, 2:6].std() < 0.02


def test_road_prefers_the_true_evidence_map():
    clf = RegionClassifier()
    x, mask = region_batch()
    good = cm.road(clf, x, mask, target=1, noise=0.0)
    rnd = cm.road(clf, x, baselines.random_map(4, 16, 16), target=1, noise=0.0)
    assert (good["morf"] < rnd["morf"]).all() and (good["road"] > 0.1).all()
    assert (good["road"] > rnd["road"] + 0.1).all()
    assert ((good["road"] >= -0.5) & (good["road"] <= 0.5)).all()


# ---------------------------------------------------------------- coherency, complexity, ADCC, ARCC

def test_coherency_and_complexity_by_hand():
    m = torch.tensor([[[0.0, 1.0], [0.5, 0.5]]])
    assert cm.coherency(m, m).item() == pytest.approx(1.0)
    assert cm.coherency(m, 1 - m).item() == pytest.approx(0.0, abs=1e-6)
    assert cm.coherency(torch.ones(1, 2, 2), torch.ones(1, 2, 2)).item() == 1.0
    assert cm.coherency(m, torch.ones(1, 2, 2)).item() == 0.5
    assert cm.complexity(m).item() == pytest.approx(0.5)
    explain = lambda imgs: imgs[:, 0].clamp(0, 1)  # noqa: E731 - a map that is channel-0 brightness
    x, mask = region_batch(2)
    assert torch.allclose(cm.coherency_of(explain, x.clamp(0, 1), mask), torch.ones(2), atol=0.05)


def test_harmonic_composites_by_hand_and_bounds():
    one, half = torch.tensor([1.0]), torch.tensor([0.5])
    assert cm.arcc(one, torch.tensor([0.0]), half).item() == pytest.approx(1.0)
    assert cm.arcc(half, half, torch.tensor([0.25])).item() == pytest.approx(0.5)
    assert cm.arcc(one, torch.tensor([0.0]), torch.tensor([-0.3])).item() == 0.0  # negative ROAD -> 0 term
    assert cm.adcc(one, torch.tensor([0.2]), torch.tensor([0.5])).item() == pytest.approx(3 / (1 + 1.25 + 2))
    g = torch.Generator().manual_seed(0)
    coh = torch.cat([torch.rand(500, generator=g), torch.tensor([0.0, 1.0, 1.0])])
    compl = torch.cat([torch.rand(500, generator=g), torch.tensor([1.0, 0.0, 1.0])])
    rd = torch.cat([torch.rand(500, generator=g) - 0.5, torch.tensor([0.5, 0.5, -0.5])])
    a = cm.arcc(coh, compl, rd)
    assert torch.isfinite(a).all() and (a >= 0).all() and (a <= 1).all()
    assert a[-3:].tolist() == [0.0, 1.0, 0.0]


# ---------------------------------------------------------------- ground-truth metrics

def test_mass_iou_by_hand():
    mask = torch.zeros(1, 4, 4)
    mask[0, :2, :2] = 1
    assert cm.mass_iou(mask.clone(), mask).item() == pytest.approx(1.0)
    m = torch.zeros(1, 4, 4)
    m[0, 0, 0], m[0, 3, 3] = 3.0, 1.0
    assert cm.mass_iou(m, mask).item() == pytest.approx(0.75)
    assert cm.mass_iou(torch.ones(1, 4, 4), mask).item() == pytest.approx(0.25)
    assert cm.mass_iou(torch.zeros(1, 4, 4), mask).item() == 0.0
    big = torch.nn.functional.interpolate(mask[:, None], size=(8, 8), mode="nearest")[:, 0]
    assert cm.mass_iou(torch.ones(1, 8, 8) * big, mask).item() == pytest.approx(1.0)  # mask resized to the map


def test_pointing_game_hits_misses_ties_and_tolerance():
    mask = torch.zeros(2, 5, 5)
    mask[:, 0, 0] = 1
    maps = torch.zeros(2, 5, 5)
    maps[0, 0, 0] = 1.0
    maps[1, 2, 2] = 1.0
    assert cm.pointing_game(maps, mask).tolist() == [1.0, 0.0]
    assert cm.pointing_game(maps, mask, tolerance=2).tolist() == [1.0, 1.0]
    assert cm.pointing_game(torch.ones(1, 5, 5), mask[:1]).item() == pytest.approx(1 / 25)


def test_pixel_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(np.round(rng.random((3, 12, 12)), 1)).float()  # coarse values: many ties
    masks = torch.from_numpy(rng.random((3, 12, 12)) < 0.3).float()
    got = cm.pixel_roc_auc(maps, masks)
    for i in range(3):
        want = roc_auc_score(masks[i].flatten().numpy(), maps[i].flatten().numpy())
        assert got[i].item() == pytest.approx(want, abs=1e-6)
    assert math.isnan(cm.pixel_roc_auc(maps[:1], torch.zeros(1, 12, 12)).item())


# ---------------------------------------------------------------- ranking and baselines

def test_constant_maps_remove_pixels_in_random_not_raster_order():
    ranks = cm.pixel_ranks(torch.ones(1, 10, 10), seed=0)
    first = cm.removal_mask(ranks, 0.1)[0]
    assert first.sum() == 10 and first[0].sum() < 10  # not simply the top row
    assert cm.removal_mask(ranks, 0.3, most_relevant=False).sum() == 30


def test_baselines_rank_below_a_perfect_map():
    clf = RegionClassifier()
    x, mask = region_batch()
    n, h, w = mask.shape
    explain_fixed = {"perfect": mask}

    def scores(maps: torch.Tensor, name: str) -> dict[str, float]:
        again = baselines.random_map(n, h, w, seed=9) if name == "random" else maps
        rd = cm.relative_drop(clf, x, maps, target=1, contrast=0, fractions=(0.1,))[0.1]
        road = cm.road(clf, x, maps, target=1, noise=0.0)["road"]
        coh = cm.coherency(maps, again)
        return {"mass_iou": cm.mass_iou(maps, mask).mean().item(), "rd": rd.mean().item(),
                "deletion": cm.deletion_auc(clf, x, maps, target=1, steps=8).mean().item(),
                "arcc": cm.arcc(coh, cm.complexity(maps), road).mean().item(),
                "auc": cm.pixel_roc_auc(maps, mask).nanmean().item()}

    best = scores(explain_fixed["perfect"], "perfect")
    assert best["mass_iou"] == pytest.approx(1.0) and best["auc"] == pytest.approx(1.0)
    for name in baselines.BASELINES:
        s = scores(baselines.baseline_maps(name, n, h, w, seed=1), name)
        assert s["mass_iou"] < best["mass_iou"] - 0.3, name
        assert s["rd"] < best["rd"], name
        assert s["deletion"] > best["deletion"], name
        assert s["arcc"] < best["arcc"] - 0.2, name


def test_baseline_maps_shapes_and_errors():
    from pipeline.errors import ConfigError

    c = baselines.centre_gaussian_map(2, 9, 9)
    assert c.shape == (2, 9, 9) and c[0, 4, 4] == 1.0 and c[0, 0, 0] == 0.0
    assert torch.equal(baselines.random_map(1, 4, 4, seed=2), baselines.random_map(1, 4, 4, seed=2))
    assert baselines.baseline_maps("constant", 1, 3, 3).unique().tolist() == [0.5]
    smooth = baselines.baseline_maps("random-smooth", 2, 32, 32, seed=1)
    assert smooth.amin().item() == 0.0 and smooth.amax().item() == 1.0
    # blobs, not pixel noise: neighbouring pixels differ far less than in the uniform random map
    assert (smooth[:, :, 1:] - smooth[:, :, :-1]).abs().mean() < 0.1
    assert (baselines.random_map(2, 32, 32)[:, :, 1:] - baselines.random_map(2, 32, 32)[:, :, :-1]).abs().mean() > 0.3
    with pytest.raises(ConfigError, match="Unknown baseline"):
        baselines.baseline_maps("zeros", 1, 3, 3)
    with pytest.raises(ConfigError, match="one target"):
        cm.relative_drop(RowClassifier(), row_image(), torch.ones(1, 2, 2), target=[0, 1])
