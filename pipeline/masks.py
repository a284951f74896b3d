"""Boolean masks (organism outlines, parts, regions): the one place that turns a mask into its bounding box, and
the one box type every stage uses."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Box(NamedTuple):
    """A pixel box in PIL crop order, right and bottom exclusive (what Image.crop takes).

    A NamedTuple so it still unpacks, indexes, compares and serialises (JSON, the database) like the plain
    (x0, y0, x1, y1) tuple the pipeline used before."""

    left: int
    top: int
    right: int
    bottom: int


def mask_box(mask: np.ndarray) -> Box | None:
    """The Box of the mask's True pixels; None when it has none."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
