"""The Fill-between-slices baseline, multi-class, along any axis."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d import engine
from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.masks import dice
from napari_fewshot3d.support import SupportSet

from ..conftest import ct_slab

pytestmark = pytest.mark.slow  # ITK's first import takes ~20 s


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_fills_both_classes_between_painted_slices(blob_volume, axis):
    image, labels = blob_volume
    array_axis = labels.slicing_axis(axis)
    painted = paint_slices(labels.array, [1, 2], array_axis, k=4)
    support = SupportSet.from_labels(labels.with_array(painted), axis)
    result, _ = engine.run(image, support, "interpolate", "cpu")
    for value in (1, 2):
        assert dice(result.array == value, labels.array == value) > 0.85
        # Interpolation never goes past the outermost painted slices of a class.
        slices = support.get(value).slices
        outside = [s for s in range(labels.shape[array_axis]) if s < slices[0] or s > slices[-1]]
        assert not np.any(np.take(result.array, outside, axis=array_axis) == value)


def test_one_painted_slice_is_refused(blob_volume):
    image, labels = blob_volume
    painted = paint_slices(labels.array, [1], 2, k=1)
    support = SupportSet.from_labels(labels.with_array(painted), 2)
    with pytest.raises(InputError, match="needs at least 2"):
        engine.run(image, support, "interpolate", "cpu")


def test_two_neighbouring_painted_slices_do_not_leave_other_gaps_empty():
    """A correction next to a painted slice (as after one round of review) must not undo the filling elsewhere."""
    image, reference = ct_slab(80, 112)
    spleen = (reference.array == 1).astype(np.uint8)
    painted = np.zeros_like(spleen)
    for s in (6, 16, 26, 27):  # slices 86, 96, 106, 107 of the CT
        painted[:, :, s] = spleen[:, :, s]
    support = SupportSet.from_labels(reference.with_array(painted), "axial")
    result, _ = engine.run(image, support, "interpolate", "cpu")
    assert all(np.any(result.array[:, :, s] == 1) for s in range(6, 28))
    assert dice(result.array == 1, spleen == 1) > 0.8
