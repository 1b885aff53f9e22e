"""SupportSet: which slices count as painted, per class, along the chosen axis."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.support import SupportSet
from napari_fewshot3d.volume import Volume


def test_painted_slices_per_class_along_each_axis(blob_volume):
    _, labels = blob_volume
    painted = paint_slices(labels.array, [1, 2], axis=2, k=2)
    support = SupportSet.from_labels(labels.with_array(painted), "axial", {1: "liver"})
    assert support.axis == 2
    assert support.class_names == {1: "liver", 2: "class_2"}
    for cls in support.classes:
        expected = [s for s in range(painted.shape[2]) if np.any(painted[:, :, s] == cls.value)]
        assert list(cls.slices) == expected
    # Coronal support on the same labels is a different set of slices along another array axis.
    coronal = SupportSet.from_labels(labels.with_array(painted), "coronal")
    assert coronal.axis == labels.slicing_axis("coronal") != 2


def test_empty_slices_are_negatives_for_every_class(blob_volume):
    _, labels = blob_volume
    painted = paint_slices(labels.array, [1], axis=2, k=2)
    support = SupportSet.from_labels(labels.with_array(painted), 2, empty_slices=[0, 29])
    assert support.negative_slices(1) == (0, *support.get(1).slices, 29)
    assert support.painted_slices() == (0, *support.get(1).slices, 29)
    with pytest.raises(InputError, match="declared empty but contains"):
        SupportSet.from_labels(labels.with_array(painted), 2, empty_slices=[support.get(1).slices[0]])
    with pytest.raises(InputError, match="outside the volume"):
        SupportSet.from_labels(labels.with_array(painted), 2, empty_slices=[30])


def test_all_background_labels_are_refused():
    with pytest.raises(InputError, match="no painted slice"):
        SupportSet.from_labels(Volume(np.zeros((4, 5, 6), np.uint8), np.eye(4)))


def test_backend_minimum_names_the_thin_class(blob_volume):
    _, labels = blob_volume
    one_slice = np.zeros_like(labels.array)
    one_slice[:, :, 15] = labels.array[:, :, 15]
    support = SupportSet.from_labels(labels.with_array(one_slice), 2, {1: "liver", 2: "spleen"})
    support.require_slices_per_class(1, "any")
    with pytest.raises(InputError, match="class liver \\(1\\) is painted on 1 slice"):
        support.require_slices_per_class(2, "interpolate")
