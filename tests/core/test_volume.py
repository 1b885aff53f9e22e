"""Geometry of Volume: spacing, slicing axes, grid comparison and exact reorientation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume import Volume, resample_onto_grid, world_axis_of_array_axes


def test_spacing_origin_and_direction_in_lps(blob_volume):
    image, _ = blob_volume
    np.testing.assert_allclose(image.spacing, [0.8, 0.9, 2.5])
    np.testing.assert_allclose(image.origin_lps, [-10.0, 20.0, 30.0])
    direction = image.direction_lps
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-12)


def test_slicing_axis_follows_orientation_not_array_order():
    # Array axes stored (S, R, A): axial slices are along array axis 0.
    affine = np.array([[0, 2.0, 0, 0], [0, 0, 1.5, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    vol = Volume(np.zeros((5, 6, 7)), affine)
    assert vol.slicing_axis("axial") == 0
    assert vol.slicing_axis("sagittal") == 1
    assert vol.slicing_axis("coronal") == 2
    assert list(world_axis_of_array_axes(affine)) == [2, 0, 1]
    with pytest.raises(InputError):
        vol.slicing_axis("oblique")


def test_non_3d_arrays_are_refused():
    with pytest.raises(InputError, match="not a 3D image"):
        Volume(np.zeros((4, 4)), np.eye(4))


def test_reorientation_is_exact_for_flips_and_permutations(blob_volume):
    _, labels = blob_volume
    # Store the same voxels as (k, i, j) with i flipped: another file's axis order, same world.
    stored = np.flip(labels.array, axis=0).transpose(2, 0, 1)
    n_i = labels.shape[0]
    old_to_new = np.zeros((4, 4))  # stored index (a, b, c) -> labels index (i, j, k)
    old_to_new[0, 1] = -1
    old_to_new[0, 3] = n_i - 1
    old_to_new[1, 2] = 1
    old_to_new[2, 0] = 1
    old_to_new[3, 3] = 1
    other = Volume(np.ascontiguousarray(stored), labels.affine @ old_to_new)
    assert not other.same_grid(labels)
    back = resample_onto_grid(other, labels)
    assert back.same_grid(labels)
    np.testing.assert_array_equal(back.array, labels.array)


def test_reorientation_refuses_other_spacing_and_subvoxel_shift(blob_volume):
    _, labels = blob_volume
    coarser = Volume(labels.array, labels.affine @ np.diag([2.0, 1, 1, 1]))
    with pytest.raises(InputError, match="grid or geometry differs"):
        resample_onto_grid(coarser, labels)
    shifted_affine = labels.affine.copy()
    shifted_affine[:3, 3] += labels.affine[:3, 0] * 0.5
    with pytest.raises(InputError, match="shifted"):
        resample_onto_grid(Volume(labels.array, shifted_affine), labels)
    cropped = Volume(labels.array[:-1], labels.affine)
    with pytest.raises(InputError, match="does not cover"):
        resample_onto_grid(cropped, labels)
