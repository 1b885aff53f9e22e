"""Another scan of the same patient, made from a case: a different spacing, orientation and field of view.

The shared data has one CT with reference labels. To measure whether a saved model finds its structures on a
scan it has never seen — at another pixel size, stored in another axis direction, framed differently — the bench
and the tests resample that CT (and its labels, nearest neighbour) onto such a grid: finer in plane, thinner
slices, stored flipped (RAS → LPS), cut above and below, and with a wider in-plane field of view padded with the
image's lowest value (air on CT), as a scanner's 500 mm field of view around a patient looks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..volume import Volume


@dataclass(frozen=True)
class OtherGrid:
    """How the other scan differs: voxel size (mm), slices kept (a fraction of the source's extent along the
    slicing axis, from its lower end), in-plane margin of air added on each side (mm), axes stored flipped."""

    spacing: tuple[float, float, float] = (0.9, 0.9, 2.0)
    keep: tuple[float, float] = (0.5, 1.0)
    pad_mm: float = 60.0
    flip: tuple[bool, bool, bool] = (True, True, False)

    def describe(self) -> str:
        axes = "".join("ijk"[a] for a in range(3) if self.flip[a]) or "none"
        return (
            f"{'x'.join(f'{s:g}' for s in self.spacing)} mm voxels, axes {axes} flipped, "
            f"{self.keep[0]:.0%}-{self.keep[1]:.0%} of the slices, {self.pad_mm:g} mm of air added in plane"
        )


def other_scan(image: Volume, labels: Volume, grid: OtherGrid = OtherGrid(), axis: int = 2) -> tuple[Volume, Volume]:
    """``image`` and ``labels`` (on its grid) resampled onto :class:`OtherGrid`; slices along array ``axis``."""
    shape_in = np.array(image.shape, float)
    lo = np.zeros(3)
    hi = shape_in - 1
    lo[axis] = np.floor(grid.keep[0] * (shape_in[axis] - 1))
    hi[axis] = np.ceil(grid.keep[1] * (shape_in[axis] - 1))
    spacing_in = image.spacing
    pad = np.array([grid.pad_mm if a != axis else 0.0 for a in range(3)]) / spacing_in
    lo, hi = lo - pad, hi + pad  # the new field of view, in source voxel indices
    step = np.asarray(grid.spacing, float) / spacing_in  # source voxels per new voxel
    shape_out = tuple(int(np.floor((hi[a] - lo[a]) / step[a])) + 1 for a in range(3))
    sign = np.where(grid.flip, -1.0, 1.0)
    start = np.where(grid.flip, lo + (np.array(shape_out) - 1) * step, lo)
    # new index n -> source index start + sign * step * n (axis by axis: a diagonal map)
    matrix = sign * step
    affine = image.affine @ _index_map(matrix, start)

    def resample(volume: Volume, order: int, fill: float) -> np.ndarray:
        data = np.asarray(volume.array, np.float32)
        out = ndi.affine_transform(data, matrix, start, shape_out, order=order, mode="constant", cval=fill)
        return out

    new_image = resample(image, 1, float(np.min(image.array)))
    if np.issubdtype(image.array.dtype, np.integer):
        new_image = np.rint(new_image).astype(np.int16)
    new_labels = resample(labels, 0, 0.0).astype(labels.array.dtype)
    meta = {"derived_from": image.name, "grid": grid.describe()}
    return (
        Volume(new_image, affine, f"{image.name}_other", dict(meta)),
        Volume(new_labels, affine, f"{labels.name}_other", dict(meta)),
    )


def isotropic(image: Volume, labels: Volume, spacing_mm: float, axis: int = 2) -> tuple[Volume, Volume]:
    """``image`` (linear) and ``labels`` (nearest neighbour) resampled to cubic voxels of ``spacing_mm``, same field
    of view and orientation: a clinical grid made from a small case, to measure how time and memory grow."""
    grid = OtherGrid(spacing=(spacing_mm,) * 3, keep=(0.0, 1.0), pad_mm=0.0, flip=(False, False, False))
    new_image, new_labels = other_scan(image, labels, grid, axis)
    meta = {"derived_from": image.name, "grid": f"resampled to {spacing_mm:g} mm isotropic"}
    return (
        Volume(new_image.array, new_image.affine, image.name, dict(meta)),
        Volume(new_labels.array, new_labels.affine, labels.name, dict(meta)),
    )


def _index_map(diagonal: np.ndarray, offset: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = np.diag(diagonal)
    out[:3, 3] = offset
    return out
