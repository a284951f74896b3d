"""Scoring helpers of describe(): side crops for embedding models and where presence is judged."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.scoring import crop_part, square_crop


def test_square_crop_stays_inside_the_photo_and_keeps_context():
    img = Image.new("RGB", (200, 100))
    mask = np.zeros((100, 200), bool)
    mask[90:100, 190:200] = True  # a 10 px piece in the corner
    crop = square_crop(img, mask)
    assert crop.size[0] == crop.size[1] == round(0.18 * 100 * 1.5)  # the minimum side, grown by the padding
    big = np.zeros((100, 200), bool)
    big[0:100, 0:150] = True
    assert square_crop(img, big).size == (100, 100)  # never larger than the photo


def test_presence_count_and_shape_are_judged_on_the_whole_host_wing():
    assert crop_part("hindwing tail", "presence") == "hindwing"
    assert crop_part("hindwing eyespot", "count") == "hindwing"
    assert crop_part("hindwing tail", "shape") == "hindwing"
    assert crop_part("forewing band", "colour") == "forewing band"
    assert crop_part("body", "presence") == "body"
    assert crop_part("antenna club", "presence", group="no such group") == "antenna club"
