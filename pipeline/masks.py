"""Boolean masks (organism outlines, parts, regions): the one place that turns a mask into its bounding box."""

from __future__ import annotations

import numpy as np


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the mask's True pixels in PIL crop order (x1, y1 exclusive); None when it has none."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
