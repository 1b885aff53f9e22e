"""napari writer: a Labels layer back to a file on its source image's grid and geometry.

A labels layer only knows where its voxels lie when it came from our reader, our sample data or our
widget (the geometry is in its metadata); for any other layer the writer refuses rather than guess an
orientation that would put the mask somewhere else in a patient.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..volume_io import write_labels
from .layer_io import class_info, data_to_volume, has_geometry


def write_labels_layer(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Write one Labels layer as .nii.gz, .nii, .nrrd, .seg.nrrd or .dcm (names and colours kept in .seg.nrrd
    and in a DICOM SEG, which needs a layer painted on an image read from a DICOM series)."""
    metadata = attributes.get("metadata") or {}
    name = attributes.get("name", "labels")
    if not has_geometry(metadata):
        raise InputError(
            f"layer {name!r} has no image geometry, so it cannot be saved on the image's grid: open the image "
            "with napari-fewshot3d and paint in a layer made by its 'New support layer' button"
        )
    volume = data_to_volume(data, metadata, name)
    names, colors = class_info(metadata)
    written = write_labels(volume, path, names, colors)
    return [str(written)]
