"""Slicer's data <-> the engine's: volume nodes, painted segments, predicted segments.

A Slicer volume node keeps its voxels in a ``vtkImageData`` (whose own origin and spacing Slicer ignores) and its
place in the world in an IJK-to-RAS ``vtkMatrix4x4``; numpy views of the voxels (``slicer.util.arrayFromVolume``,
``arrayFromSegmentBinaryLabelmap``) are indexed ``[k, j, i]``. The engine's :class:`Volume` is indexed ``[i, j, k]``
with an IJK-to-RAS affine. Both are RAS, so nothing is flipped here: Slicer's readers already turned the LPS
geometry of NRRD/DICOM/ITK files into RAS, the same way the engine's readers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import smallest_label_dtype

Color = tuple[float, float, float]


def matrix_to_numpy(matrix) -> np.ndarray:
    """A ``vtkMatrix4x4`` (anything with ``GetElement(row, column)``) as a 4x4 float array."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def numpy_to_matrix(affine: np.ndarray):
    """A 4x4 array as a ``vtkMatrix4x4``, e.g. to give a new node the geometry of an engine volume."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise ValueError(f"an IJK-to-RAS matrix is 4x4, got {affine.shape}")
    matrix = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(affine[r, c]))
    return matrix


def array_from_image_data(image_data) -> np.ndarray:
    """The voxels of a single-component ``vtkImageData`` as a ``[k, j, i]`` view (what ``arrayFromVolume`` gives)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    if image_data is None or image_data.GetPointData().GetScalars() is None:
        raise InputError("the input volume has no voxels (is it still loading?)")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputError(
            f"the input volume has {image_data.GetNumberOfScalarComponents()} components per voxel; "
            "choose a scalar (grey-value) volume"
        )
    ni, nj, nk = image_data.GetDimensions()
    return vtk_to_numpy(image_data.GetPointData().GetScalars()).reshape(nk, nj, ni)


def volume_from_kji(array_kji: np.ndarray, ijk_to_ras, name: str = "") -> Volume:
    """An engine volume from a Slicer-ordered array and the node's IJK-to-RAS matrix (vtkMatrix4x4 or 4x4 array).

    The array is copied: the engine may run in another thread while the user keeps editing the node.
    """
    affine = ijk_to_ras if isinstance(ijk_to_ras, np.ndarray) else matrix_to_numpy(ijk_to_ras)
    array = np.asarray(array_kji)
    if array.ndim != 3:
        raise InputError(f"{name or 'the volume'} is not a 3D image (shape {array.shape})")
    return Volume(np.ascontiguousarray(array.transpose(2, 1, 0)), affine, name)


def volume_from_image_data(image_data, ijk_to_ras, name: str = "") -> Volume:
    """An engine volume from what a scalar volume node holds: its image data and its IJK-to-RAS matrix."""
    return volume_from_kji(array_from_image_data(image_data), ijk_to_ras, name)


def kji_from_ijk(array_ijk: np.ndarray) -> np.ndarray:
    """An engine-ordered array in Slicer's ``[k, j, i]`` order, contiguous (ready for ``updateVolumeFromArray``)."""
    return np.ascontiguousarray(np.asarray(array_ijk).transpose(2, 1, 0))


# ----------------------------------------------------------------------------- segments


@dataclass
class Segment:
    """One segment of a segmentation node as a mask on the input volume's grid, ``[k, j, i]`` as Slicer gives it."""

    segment_id: str
    name: str
    color: Color
    mask: np.ndarray


@dataclass(frozen=True)
class SegmentClass:
    """A label value of the engine and the segment it stands for."""

    value: int
    segment_id: str
    name: str
    color: Color


def classes_of(segments: Sequence[Segment]) -> list[SegmentClass]:
    """Label values 1, 2, ... for the segments in the order the segmentation lists them."""
    return [SegmentClass(n + 1, s.segment_id, s.name, tuple(float(c) for c in s.color)) for n, s in enumerate(segments)]


def labels_from_segments(image: Volume, segments: Sequence[Segment], classes: Sequence[SegmentClass]) -> Volume:
    """One label volume on the image's grid: each segment's voxels get its class value.

    ``classes`` names which segment id takes which value; a segment without a class is refused. Where two
    segments overlap, the later one in ``segments`` wins (Segment Editor prevents overlaps by default).
    """
    value_of = {c.segment_id: c.value for c in classes}
    expected = tuple(reversed(image.shape))
    labels_kji = np.zeros(expected, dtype=smallest_label_dtype(max(value_of.values(), default=0)))
    for segment in segments:
        if segment.segment_id not in value_of:
            raise InputError(f"segment {segment.name!r} is new since the last 'Adapt and segment': adapt again")
        mask = np.asarray(segment.mask)
        if mask.shape != expected:
            raise InputError(
                f"segment {segment.name!r} is not on the input volume's grid (shape {mask.shape} vs {expected})"
            )
        labels_kji[mask != 0] = value_of[segment.segment_id]
    labels = image.with_array(labels_kji.transpose(2, 1, 0), name=f"{image.name} labels")
    labels.metadata = {
        "class_names": {c.value: c.name for c in classes},
        "class_colors": {c.value: list(c.color) for c in classes},
    }
    return labels


def segments_from_labels(labels: Volume, classes: Sequence[SegmentClass]) -> list[Segment]:
    """One ``[k, j, i]`` mask per class from an engine label volume, on the same grid (every class, even if empty)."""
    labels_kji = kji_from_ijk(labels.array)
    return [
        Segment(c.segment_id, c.name, c.color, (labels_kji == c.value).astype(np.uint8, copy=False)) for c in classes
    ]
