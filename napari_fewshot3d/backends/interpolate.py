"""Fill-between-slices: ITK's morphological contour interpolation, the baseline to beat.

The same algorithm as 3D Slicer's "Fill between slices" effect. It learns nothing from the
image, so it needs two painted slices per class and cannot extend beyond the painted range.
"""

from __future__ import annotations

import numpy as np

from ..progress import Task
from ..support import SupportSet
from ..volume import Volume
from .base import AdaptedModel, Backend


class InterpolateBackend(Backend):
    name = "interpolate"
    description = "Fill between slices (ITK morphological contour interpolation); no learning"
    min_slices_per_class = 2
    can_save = False

    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        support.require_slices_per_class(self.min_slices_per_class, self.name)
        task.report(1.0, "support read")
        return InterpolatedLabels(support)


class InterpolatedLabels(AdaptedModel):
    """Interpolation is tied to the painted labels of one volume; it cannot be applied to another."""

    backend_name = InterpolateBackend.name

    def __init__(self, support: SupportSet) -> None:
        self.support = support
        self.class_names = support.class_names

    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        if not volume.same_grid(self.support.labels):
            raise ValueError("interpolation only fills the volume whose slices were painted")
        task.report(0.0, "loading ITK")
        return interpolate_between_slices(self.support.labels.array, self.support.axis, task)


def _itk():
    """ITK, imported on first use (~20 s), with its own thread pool instead of TBB.

    ITK's TBB threader and PyTorch's runtime in one process corrupt the heap (measured: the
    process aborts in malloc_consolidate at exit in most runs); ITK's pool threader does not.
    """
    import itk

    itk.MultiThreaderBase.SetGlobalDefaultThreader(itk.MultiThreaderBase.ThreaderTypeFromString("POOL"))
    return itk


def interpolate_between_slices(labels: np.ndarray, axis: int, task: Task | None = None) -> np.ndarray:
    """Fill the slices between painted ones along ``axis`` for every label value."""
    itk = _itk()
    task = task or Task()
    dtype = np.uint8 if labels.max() <= 255 else np.uint16
    # ITK's axis 0 is the fastest-varying one: hand it (k, j, i) so its axes equal ours. A copy, not a
    # view: ITK must own its input for the whole filter run.
    image = itk.image_from_array(np.ascontiguousarray(labels.astype(dtype).transpose(2, 1, 0)))
    interpolator = itk.MorphologicalContourInterpolator.New(image)
    interpolator.SetAxis(int(axis))
    interpolator.SetUseDistanceTransform(True)
    task.report(0.05, "interpolating between painted slices")
    interpolator.Update()
    task.report(1.0, "interpolated")
    result = itk.array_from_image(interpolator.GetOutput()).transpose(2, 1, 0)
    return np.ascontiguousarray(result).astype(labels.dtype, copy=False)
