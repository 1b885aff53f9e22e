"""The painted outlines morphed between neighbouring painted slices, and how to combine them with SAM's masks.

Between two painted slices, the structure's outline usually changes smoothly: blending the two
outlines' signed distance maps gives a shape for each slice in between (what Fill-between-slices
does, in 2D per slice and without ITK). Whether that shape should cut SAM's mask down (SAM spills
over a coarse outline, measured on MR), widen it (SAM misses part of a thin or low-contrast
structure), or be ignored is decided per class from the painted slices themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

#: How SAM's mask and the interpolated shape combine on slices between painted ones.
FUSIONS = ("none", "intersect", "union")
#: A fusion must beat "none" by this much Dice on the held-out painted slices to be chosen (noise guard).
FUSION_MARGIN = 0.01


def signed_distance(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance to the outline in mm, negative inside."""
    if not mask.any():
        return np.full(mask.shape, 1e6, np.float32)
    outside = ndi.distance_transform_edt(~mask, sampling=spacing)
    inside = ndi.distance_transform_edt(mask, sampling=spacing)
    return (outside - inside).astype(np.float32)


def between(lower: np.ndarray, upper: np.ndarray, fraction: float, spacing: Sequence[float]) -> np.ndarray:
    """The shape a ``fraction`` (0..1) of the way from the ``lower`` outline to the ``upper`` one."""
    blend = (1 - fraction) * signed_distance(lower, spacing) + fraction * signed_distance(upper, spacing)
    return blend < 0


def interpolated_slices(
    painted: dict[int, np.ndarray], spacing: Sequence[float], only: int | None = None
) -> dict[int, np.ndarray]:
    """Shapes on every slice strictly between consecutive painted slices (or on slice ``only`` alone, if it is one)."""
    order = sorted(painted)
    shapes: dict[int, np.ndarray] = {}
    for lower, upper in zip(order, order[1:], strict=False):
        for index in range(lower + 1, upper) if only is None else [only] if lower < only < upper else []:
            shapes[index] = between(painted[lower], painted[upper], (index - lower) / (upper - lower), spacing)
    return shapes


def held_out_shape(painted: dict[int, np.ndarray], index: int, spacing: Sequence[float]) -> np.ndarray:
    """The shape on painted slice ``index`` as if it had not been painted: from its painted neighbours."""
    lower, upper = neighbours(painted, index)
    return between(painted[lower], painted[upper], (index - lower) / (upper - lower), spacing)


def neighbours(painted: dict[int, np.ndarray], index: int) -> tuple[int, int]:
    """The painted slices just below and just above an interior painted slice."""
    order = sorted(painted)
    position = order.index(index)
    return order[position - 1], order[position + 1]


def fuse(mask: np.ndarray, shape: np.ndarray | None, fusion: str) -> np.ndarray:
    """SAM's (or the head's) mask combined with the interpolated shape of the same slice."""
    if shape is None or fusion == "none":
        return mask
    return mask & shape if fusion == "intersect" else mask | shape


def choose_fusion(scores: dict[str, list[float]]) -> str:
    """The fusion whose held-out Dice is best, if it clearly beats using SAM's mask alone."""
    if not scores.get("none"):
        return "none"
    means = {name: float(np.mean(values)) for name, values in scores.items() if values}
    best = max(means, key=means.get)
    return best if means[best] >= means["none"] + FUSION_MARGIN else "none"
