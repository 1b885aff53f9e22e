"""A segmentation of a volume that Slicer's DICOM module loaded, as a DICOM SEG that references the series.

Slicer records the SOP Instance UIDs of a volume loaded from DICOM in the node's ``DICOM.instanceUIDs`` attribute and
keeps the files in its DICOM database; this layer takes both as plain values (no Slicer imports), finds the series'
grid from the files' headers and writes the labels through the engine's SEG writer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_fewshot3d.dicom_series import DICOM_KEY, series_of_files
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume import Volume, resample_onto_grid
from napari_fewshot3d.volume_io import write_labels

#: The volume node attribute in which Slicer's DICOM module lists the instances a volume was loaded from.
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"


def source_files(volume_name: str, instance_uids: str | None, file_for_instance: Callable[[str], str] | None) -> list:
    """The DICOM files a volume node came from, or a clear refusal when it did not come from DICOM."""
    uids = (instance_uids or "").split()
    if not uids:
        raise InputError(
            f"{volume_name} was not loaded from DICOM (it has no {INSTANCE_UIDS_ATTRIBUTE}): load the series with "
            "Slicer's DICOM module to export a DICOM SEG, or export .seg.nrrd / .nii.gz"
        )
    if file_for_instance is None:
        raise InputError(f"{volume_name}: Slicer's DICOM database is not available, so its DICOM files are unknown")
    files = [file_for_instance(uid) for uid in uids]
    missing = [uid for uid, file in zip(uids, files, strict=True) if not file]
    if missing:
        raise InputError(f"{volume_name}: {len(missing)} of its DICOM instances are not in the DICOM database")
    return files


def write_seg_for_series(
    labels: Volume, files: list[str], path: str, names: dict[int, str], colors: dict[int, list[float]]
) -> str:
    """Labels on the volume's grid written as a SEG on the grid of the series they were loaded from."""
    affine, shape, identity = series_of_files(files, labels.name or "the input volume")
    series = Volume(np.zeros(shape, np.uint8), affine, labels.name, metadata={DICOM_KEY: identity})
    on_series = resample_onto_grid(labels, series, what="the segmentation")
    return str(write_labels(on_series, path, names, colors))
