"""Volume nodes and segments <-> engine data, on the real shared volumes through real VTK objects."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("vtk", reason="the Slicer module's tests need the vtk wheel (pip install vtk)")

from FewShot3DLib.geometry import (  # noqa: E402 - after the skip
    Segment,
    array_from_image_data,
    classes_of,
    kji_from_ijk,
    labels_from_segments,
    matrix_to_numpy,
    numpy_to_matrix,
    segments_from_labels,
    volume_from_image_data,
)
from napari_fewshot3d.errors import InputError  # noqa: E402
from napari_fewshot3d.volume_io import read_image  # noqa: E402

from ..conftest import data_path  # noqa: E402
from .conftest import node_parts, read_itk, world_of  # noqa: E402

_LPS = np.diag([-1.0, -1.0, 1.0])


@pytest.mark.parametrize("case", ["mr_abdomen", "ct_abdomen"])
def test_volume_node_to_engine_volume_keeps_voxels_and_world_positions(case):
    itk_image = read_itk(case, "image.nii.gz")
    node = node_parts(itk_image)
    volume = volume_from_image_data(node.image_data, node.ijk_to_ras, case)

    assert volume.shape == tuple(itk_image.GetSize())
    rng = np.random.default_rng(1)
    corners = np.array(
        [
            [i, j, k]
            for i in (0, volume.shape[0] - 1)
            for j in (0, volume.shape[1] - 1)
            for k in (0, volume.shape[2] - 1)
        ]
    )
    voxels = np.vstack([corners, rng.integers(0, volume.shape, size=(20, 3))])
    through_vtk = world_of(node.ijk_to_ras, voxels)
    through_engine = voxels @ volume.affine[:3, :3].T + volume.affine[:3, 3]
    through_itk = np.array([itk_image.TransformIndexToPhysicalPoint(tuple(int(x) for x in v)) for v in voxels])
    np.testing.assert_allclose(through_engine, through_vtk, atol=1e-6)
    np.testing.assert_allclose(through_engine, through_itk @ _LPS.T, atol=1e-4)  # ITK is LPS, Slicer RAS
    for i, j, k in voxels:
        assert volume.array[i, j, k] == itk_image.GetPixel(int(i), int(j), int(k))

    # The engine's own reader puts the same voxels at the same places.
    from_file = read_image(data_path(case, "image.nii.gz"))
    assert volume.same_grid(from_file)
    np.testing.assert_array_equal(volume.array, from_file.array)
    # And back: Slicer's [k, j, i] order, and the matrix a new node would get.
    np.testing.assert_array_equal(kji_from_ijk(volume.array), node.kji())
    np.testing.assert_allclose(matrix_to_numpy(numpy_to_matrix(volume.affine)), matrix_to_numpy(node.ijk_to_ras))


def test_the_mr_volume_is_stored_lps_so_the_round_trip_covers_flipped_axes():
    node = node_parts(read_itk("mr_abdomen", "image.nii.gz"))
    affine = matrix_to_numpy(node.ijk_to_ras)
    assert affine[0, 0] < 0 and affine[1, 1] < 0  # i runs right-to-left, j anterior-to-posterior


def test_image_data_view_is_indexed_k_j_i():
    import vtk
    from vtkmodules.util.numpy_support import numpy_to_vtk

    ijk = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(2, 3, 4)
    image_data.GetPointData().SetScalars(numpy_to_vtk(kji_from_ijk(ijk).ravel(), deep=True))
    # vtkImageData's own index -> value lookup agrees with the engine's [i, j, k].
    for i, j, k in [(0, 0, 0), (1, 2, 3), (1, 0, 2)]:
        assert image_data.GetScalarComponentAsDouble(i, j, k, 0) == ijk[i, j, k]
    np.testing.assert_array_equal(array_from_image_data(image_data), kji_from_ijk(ijk))


def test_a_vector_volume_is_refused():
    import vtk

    image_data = vtk.vtkImageData()
    image_data.SetDimensions(2, 2, 2)
    image_data.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    with pytest.raises(InputError, match="3 components"):
        array_from_image_data(image_data)


def _segments(shape_kji):
    a = np.zeros(shape_kji, np.uint8)
    b = np.zeros(shape_kji, np.uint8)
    a[1, 2:5, 1:3] = 1
    b[1, 4:6, 1:3] = 1  # overlaps a on row 4
    return [Segment("Segment_1", "liver", (1.0, 0.0, 0.0), a), Segment("Segment_7", "spleen", (0.0, 0.0, 1.0), b)]


def test_segments_become_labels_and_come_back_as_the_same_masks(blob_volume):
    image, _ = blob_volume
    segments = _segments(tuple(reversed(image.shape)))
    classes = classes_of(segments)
    labels = labels_from_segments(image, segments, classes)

    assert [(c.value, c.segment_id, c.name) for c in classes] == [(1, "Segment_1", "liver"), (2, "Segment_7", "spleen")]
    assert labels.same_grid(image)
    assert labels.metadata["class_names"] == {1: "liver", 2: "spleen"}
    # [k, j, i] masks land at [i, j, k]; where segments overlap the later one wins.
    assert labels.array[1, 2, 1] == 1 and labels.array[1, 4, 1] == 2 and labels.array[2, 5, 1] == 2
    back = segments_from_labels(labels, classes)
    np.testing.assert_array_equal(back[1].mask, segments[1].mask)
    np.testing.assert_array_equal(back[0].mask, segments[0].mask & ~segments[1].mask)
    assert [s.segment_id for s in back] == ["Segment_1", "Segment_7"]


def test_segments_off_the_grid_or_unknown_are_refused(blob_volume):
    image, _ = blob_volume
    segments = _segments(tuple(reversed(image.shape)))
    classes = classes_of(segments)
    wrong = Segment("Segment_1", "liver", (1.0, 0.0, 0.0), np.zeros(image.shape, np.uint8))  # [i, j, k], not k, j, i
    with pytest.raises(InputError, match="not on the input volume's grid"):
        labels_from_segments(image, [wrong], classes)
    stranger = Segment("Segment_9", "kidney", (0.0, 1.0, 0.0), segments[0].mask)
    with pytest.raises(InputError, match="new since the last"):
        labels_from_segments(image, [stranger], classes)
