"""Painted outlines morphed between painted slices, and the per-class choice of how they combine with SAM."""

from __future__ import annotations

import numpy as np

from napari_fewshot3d.backends.selfprompt.shape_prior import (
    between,
    choose_fusion,
    fuse,
    held_out_shape,
    interpolated_slices,
)


def disc(radius: float, size: int = 41) -> np.ndarray:
    y, x = np.mgrid[:size, :size] - size // 2
    return x * x + y * y <= radius * radius


def test_halfway_between_two_discs_is_the_disc_of_mean_radius():
    halfway = between(disc(6), disc(14), 0.5, (1.0, 1.0))
    assert abs(halfway.sum() - disc(10).sum()) <= 0.05 * disc(10).sum()
    assert np.array_equal(between(disc(6), disc(14), 0.0, (1.0, 1.0)), disc(6))


def test_anisotropic_pixels_are_measured_in_mm():
    wide = np.zeros((41, 41), bool)
    wide[15:26, 5:36] = True
    # 0.5 mm columns: the same shapes, interpolated in mm, stay inside their union and cover their intersection.
    shape = between(wide, np.roll(wide, 4, axis=0), 0.5, (1.0, 0.5))
    assert (shape <= (wide | np.roll(wide, 4, axis=0))).all() and shape.sum() >= (wide & np.roll(wide, 4, axis=0)).sum()


def test_shapes_fill_only_the_gaps_between_painted_slices():
    painted = {2: disc(5), 6: disc(9), 8: disc(9)}
    shapes = interpolated_slices(painted, (1.0, 1.0))
    assert sorted(shapes) == [3, 4, 5, 7]
    assert shapes[3].sum() < shapes[4].sum() < shapes[5].sum()
    held_out = held_out_shape(painted, 6, (1.0, 1.0))  # slice 6 predicted from 2 and 8, as when held out
    assert np.array_equal(held_out, interpolated_slices({2: disc(5), 8: disc(9)}, (1.0, 1.0))[6])


def test_fusion_is_chosen_only_when_it_clearly_helps():
    assert choose_fusion({"none": [0.80], "intersect": [0.90], "union": [0.70]}) == "intersect"
    assert choose_fusion({"none": [0.80], "intersect": [0.805], "union": [0.79]}) == "none"  # within the margin
    assert choose_fusion({"none": [], "intersect": [], "union": []}) == "none"  # nothing held out: no evidence
    mask, shape = disc(8), disc(5)
    assert np.array_equal(fuse(mask, shape, "intersect"), shape)
    assert np.array_equal(fuse(shape, mask, "union"), mask)
    assert np.array_equal(fuse(mask, None, "union"), mask)
