"""Regions of a map (thresholding, components, ranking, padding, overlap suppression, minimum size) and the
organism outline and part layout used to place them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.regions import (
    describe_location,
    extract_regions,
    masked_crop,
    organism_mask,
    part_mask,
    relative_position,
)


def _blob_map(h=100, w=200, blobs=((30, 40, 10, 1.0), (70, 150, 6, 0.8))):
    yy, xx = np.mgrid[0:h, 0:w]
    cam = np.zeros((h, w), np.float32)
    for cy, cx, r, peak in blobs:
        cam = np.maximum(cam, peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)))
    return cam


def test_regions_ranked_by_mass_with_boxes_around_the_blobs():
    img = Image.new("RGB", (200, 100), (90, 90, 90))
    regions = extract_regions(img, _blob_map(), top_k=3, threshold=0.3, pad=0.1, min_size=0.05)
    assert len(regions) == 2
    big, small = regions
    assert big.mass > small.mass > 0 and big.peak == pytest.approx(1.0)
    x0, y0, x1, y1 = big.box
    assert x0 < 40 < x1 and y0 < 30 < y1 and (x1 - x0) < 60
    x0, y0, x1, y1 = small.box
    assert x0 < 150 < x1 and y0 < 70 < y1
    assert big.crop.size == (big.box[2] - big.box[0], big.box[3] - big.box[1])
    assert big.area == pytest.approx((big.box[2] - big.box[0]) * (big.box[3] - big.box[1]) / 20000)
    assert set(big.to_dict()) == {"index", "box", "mass", "area", "peak", "location"}


def test_map_at_feature_resolution_is_upsampled_to_the_image():
    img = Image.new("RGB", (160, 160))
    cam = np.zeros((7, 7), np.float32)
    cam[1, 5] = 1.0
    (r,) = extract_regions(img, cam, top_k=3)
    cx, cy = (r.box[0] + r.box[2]) / 2, (r.box[1] + r.box[3]) / 2
    assert 100 < cx < 150 and 10 < cy < 60


def test_overlap_suppression_top_k_and_min_size():
    img = Image.new("RGB", (200, 100))
    cam = _blob_map(blobs=((50, 50, 8, 1.0), (50, 70, 8, 0.9), (50, 170, 3, 0.7)))
    regions = extract_regions(img, cam, top_k=5, threshold=0.6, pad=0.5, max_overlap=0.3, min_size=0.4)
    for i, a in enumerate(regions):
        for b in regions[i + 1:]:
            ix = max(0, min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]))
            iy = max(0, min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]))
            smaller = min((a.box[2] - a.box[0]) * (a.box[3] - a.box[1]), (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))
            assert ix * iy / smaller <= 0.3
    assert all(min(r.box[2] - r.box[0], r.box[3] - r.box[1]) >= 40 for r in regions)
    assert len(extract_regions(img, cam, top_k=1)) == 1


def test_empty_and_nan_maps_give_no_regions():
    img = Image.new("RGB", (64, 64))
    assert extract_regions(img, np.zeros((8, 8))) == []
    assert extract_regions(img, np.full((8, 8), np.nan)) == []


def test_organism_outline_on_synthetic_photos(synthetic_species_dir):
    manifest = pd.read_csv(synthetic_species_dir / "manifest.csv")
    ious: dict[bool, list[float]] = {True: [], False: []}
    for row in manifest.itertuples():
        img = Image.open(synthetic_species_dir / row.image).convert("RGB")
        truth = np.asarray(Image.open(synthetic_species_dir / row.mask)) > 0
        for refine, out in ious.items():
            est = organism_mask(img, refine=refine)
            out.append(0.0 if est is None else (est & truth).sum() / (est | truth).sum())
    # Measured on these 72 photos: 0.807 rough, 0.845 refined by GrabCut.
    assert np.mean(ious[True]) > 0.82, ious[True]
    assert np.mean(ious[True]) > np.mean(ious[False]) + 0.02


def test_grabcut_brings_back_what_the_saliency_left_out():
    # A red ellipse on noisy green; the saliency map covers only its left half (as a Grad-CAM focused on one wing).
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:120, :160]
    body = ((xx - 80) / 55) ** 2 + ((yy - 60) / 35) ** 2 <= 1
    pixels = (np.array([60, 120, 60]) + rng.normal(0, 12, (120, 160, 3))).clip(0, 255)
    pixels[body] = [200, 60, 40]
    img = Image.fromarray(pixels.astype(np.uint8))
    saliency = np.zeros((120, 160), np.float32)
    saliency[:, :80] = 1.0

    def iou(m):
        return (m & body).sum() / (m | body).sum()

    assert iou(organism_mask(img, saliency=saliency, refine=False)) < 0.6
    assert iou(organism_mask(img, saliency=saliency)) > 0.95


def test_plain_photo_has_no_outline_and_location_is_unknown():
    img = Image.new("RGB", (64, 64), (120, 130, 140))
    assert organism_mask(img) is None
    assert describe_location((0, 0, 10, 10), None) is None


def test_location_words_and_part_layout():
    organism = np.zeros((100, 200), bool)
    organism[10:90, 20:180] = True
    assert describe_location((20, 10, 50, 30), organism) == "upper left of the organism"
    assert describe_location((90, 40, 110, 60), organism) == "centre of the organism"
    assert describe_location((150, 40, 178, 60), organism) == "right part of the organism"
    u, v = relative_position((90, 40, 110, 60), organism)
    assert u == pytest.approx(0.5) and v == pytest.approx(0.5)
    fore, hind = part_mask(organism, "forewing"), part_mask(organism, "hindwing")
    assert np.nonzero(fore)[0].mean() < np.nonzero(hind)[0].mean()  # forewings above hindwings
    assert part_mask(organism, "no such part") is None
    crop = masked_crop(Image.new("RGB", (200, 100), (255, 0, 0)), fore)
    alpha = np.asarray(crop.getchannel("A"))
    assert crop.mode == "RGBA" and alpha.max() == 255 and alpha.min() == 0


def test_margins_follow_the_outline_and_interior_marks_leave_it_out():
    organism = np.zeros((120, 120), bool)
    organism[10:110, 10:110] = True  # span 100 px: the margin strip is MARGIN_WIDTH * 100 = 5 px wide
    margin = part_mask(organism, "hindwing margin")
    hind = part_mask(organism, "hindwing")
    assert margin is not None and not (margin & ~hind).any()  # inside the hindwing's boxes
    ys, xs = np.nonzero(margin)
    # every margin pixel lies within 5 px of the outline, and the strip is really there at the bottom edge
    edge = np.minimum.reduce([ys - 10, 109 - ys, xs - 10, 109 - xs])
    assert edge.max() <= 4 and margin[105:110, 30:40].all() and not margin[60:100, 30:40].any()
    band = part_mask(organism, "hindwing band")
    assert band is not None and not (band & margin).any()
    # the image border cuts the organism off: that side is not its margin
    yy, xx = np.mgrid[0:100, 0:120]
    cut = (yy - 55) ** 2 + (xx - 60) ** 2 <= 50**2  # a disc whose bottom lies beyond the image
    cut_margin = part_mask(cut, "hindwing margin")
    assert cut_margin is not None and cut_margin[70:90].any() and not cut_margin[95:, 45:75].any()


def test_thin_tails_do_not_move_the_part_layout():
    from pipeline.regions import core_box

    body = np.zeros((160, 120), bool)
    body[10:110, 10:110] = True
    tailed = body.copy()
    tailed[110:150, 40:43] = True  # a 3 px wide, 40 px long tail
    assert core_box(body) == (10, 10, 110, 110)  # a Box: (x0, y0, x1, y1)
    x0, y0, x1, y1 = core_box(tailed)
    assert (x0, x1, y0) == (10, 110, 10) and y1 <= 113  # the whole box would end at 150
    for part in ("forewing", "hindwing band"):
        a, b = part_mask(tailed, part) & body, part_mask(body, part)
        assert (a & b).sum() / (a | b).sum() > 0.85  # laid on the whole box it would be about 0.7
    tail = part_mask(tailed, "hindwing tail")  # the tail's box reaches below the core box
    assert tail is not None and tail[120:150].any()
