"""One structure's mask from three opinions, on the image it was painted on.

Between the first and last painted slice: a vote — a voxel is the structure where two of selfprompt-sam, the forest
and Fill between slices say so. They err in different places (SAM on thin low-contrast edges, the forest on
look-alike tissue, the interpolation wherever the outline changes between painted slices), so two of them rarely
agree on a mistake. Beyond the painted range there is no interpolation, and the learners' masks are continued slice
by slice outward from the outermost painted slice, each slice kept only where it lies near the slice before: SAM's
outline may move out by at most ``SAM_GROWTH`` mm per mm of slice spacing there, the forest's not at all (it judges
voxels one by one, so its pieces creep into the tissue next to the structure); either one's continued mask counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

#: How far (mm per mm of slice spacing) SAM's outline may move out per slice beyond the painted range; the forest: 0.
SAM_GROWTH = 1.0


def combined(
    sam: np.ndarray,
    forest: np.ndarray,
    filled: np.ndarray,
    painted: dict[int, np.ndarray],
    axis: int,
    spacing: Sequence[float],
) -> np.ndarray:
    """The structure's mask: the vote of three between its painted slices (``painted``: slice -> painted mask along
    ``axis``), the continued learners' masks beyond them. ``spacing``: the voxel size in mm, per array axis."""
    order = sorted(painted)
    lo, hi = order[0], order[-1]
    sam, forest, filled = (np.moveaxis(m, axis, 0) for m in (sam, forest, filled))
    out = np.zeros(sam.shape, bool)
    out[lo : hi + 1] = sam[lo : hi + 1].astype(np.int8) + forest[lo : hi + 1] + filled[lo : hi + 1] >= 2
    in_plane = tuple(float(s) for a, s in enumerate(spacing) if a != axis)
    radius = SAM_GROWTH * float(spacing[axis])
    for start, steps in ((lo, range(lo - 1, -1, -1)), (hi, range(hi + 1, sam.shape[0]))):
        out[list(steps)] = continued(sam, painted[start], steps, radius, in_plane) | continued(
            forest, painted[start], steps, 0.0, in_plane
        )
    return np.moveaxis(out, 0, axis)


def continued(
    masks: np.ndarray, start: np.ndarray, steps: Sequence[int], radius_mm: float, spacing: Sequence[float]
) -> np.ndarray:
    """``masks[s]`` for s in ``steps`` (slices along axis 0, moving away from the slice whose mask is ``start``): each
    slice keeps the pieces that reach within ``radius_mm`` of the slice before it, cut to that distance. Stacked in
    the order of ``steps``."""
    out = np.zeros((len(steps), *masks.shape[1:]), bool)
    previous = start.astype(bool)
    for n, index in enumerate(steps):
        if not previous.any():
            break
        near = ndi.distance_transform_edt(~previous, sampling=spacing) <= radius_mm
        pieces, _ = ndi.label(masks[index])
        touching = np.unique(pieces[near & (pieces > 0)])
        previous = np.isin(pieces, touching[touching > 0]) & near
        out[n] = previous
    return out
