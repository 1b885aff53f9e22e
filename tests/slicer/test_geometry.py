"""Volume nodes and segments <-> engine data: volume nodes loaded by Slicer's own readers (slicer-core)."""

from __future__ import annotations

import numpy as np
import pytest

from FewShot3DLib.geometry import (
    Segment,
    classes_of,
    kji_from_ijk,
    labels_from_segments,
    matrix_to_numpy,
    numpy_to_matrix,
    segments_from_labels,
)
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume_io import read_image

from ..conftest import data_path

_LPS = np.diag([-1.0, -1.0, 1.0])


@pytest.mark.parametrize("case", ["mr_abdomen", "ct_abdomen"])
def test_volume_node_to_engine_volume_keeps_voxels_and_world_positions(fewshot3d, slicer, scene, case):
    import SimpleITK as sitk
    import vtk

    path = data_path(case, "image.nii.gz")
    node = slicer.util.loadVolume(str(path))
    volume = fewshot3d.FewShot3DLogic().volumeOf(node)
    itk_image = sitk.ReadImage(str(path))
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)

    assert volume.shape == tuple(itk_image.GetSize()) == tuple(node.GetImageData().GetDimensions())
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
    through_slicer = np.array([ijk_to_ras.MultiplyPoint((*map(float, v), 1.0))[:3] for v in voxels])
    through_engine = voxels @ volume.affine[:3, :3].T + volume.affine[:3, 3]
    through_itk = np.array([itk_image.TransformIndexToPhysicalPoint(tuple(int(x) for x in v)) for v in voxels])
    np.testing.assert_allclose(through_engine, through_slicer, atol=1e-6)
    np.testing.assert_allclose(through_engine, through_itk @ _LPS.T, atol=1e-4)  # ITK is LPS, Slicer RAS
    image_data = node.GetImageData()
    for i, j, k in voxels:  # vtkImageData's own index lookup agrees with the engine's [i, j, k]
        assert volume.array[i, j, k] == itk_image.GetPixel(int(i), int(j), int(k))
        assert volume.array[i, j, k] == image_data.GetScalarComponentAsDouble(int(i), int(j), int(k), 0)

    # The engine's own reader puts the same voxels at the same places.
    from_file = read_image(path)
    assert volume.same_grid(from_file)
    np.testing.assert_array_equal(volume.array, from_file.array)
    # And back: Slicer's [k, j, i] order, and the matrix a new node would get.
    np.testing.assert_array_equal(kji_from_ijk(volume.array), slicer.util.arrayFromVolume(node))
    np.testing.assert_allclose(matrix_to_numpy(numpy_to_matrix(volume.affine)), matrix_to_numpy(ijk_to_ras))
    if case == "mr_abdomen":  # stored LPS: i runs right-to-left, j anterior-to-posterior, so flipped axes are covered
        assert volume.affine[0, 0] < 0 and volume.affine[1, 1] < 0


def test_a_vector_volume_is_refused(fewshot3d, slicer, scene):
    rgb = slicer.util.addVolumeFromArray(np.zeros((2, 2, 2, 3), np.uint8), nodeClassName="vtkMRMLVectorVolumeNode")
    with pytest.raises(InputError, match="3 components"):
        fewshot3d.FewShot3DLogic().volumeOf(rgb)
    with pytest.raises(InputError, match="choose an input volume"):
        fewshot3d.FewShot3DLogic().volumeOf(None)


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
