"""napari reader: medical volumes (NIfTI, NRRD, MHA/MHD, Slicer .seg.nrrd, DICOM series folders, DICOM SEG).

Images become Image layers, label files Labels layers; both keep the file's exact geometry in their
metadata (see ``layer_io``) so that what is painted on them exports back onto the same grid.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..dicom_seg import is_dicom_seg
from ..dicom_series import NOTES_KEY
from ..errors import InputError
from ..preprocess import display_window
from ..volume import Volume
from ..volume_io import format_of, looks_like_dicom_folder, read_image, read_labels
from .layer_io import labels_layer_kwargs, volume_to_layer_data

FILE_FORMATS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".seg.nrrd")

#: A file whose name has one of these words and whose voxels are whole, non-negative numbers is a label map.
LABEL_NAME_HINTS = ("label", "seg", "mask", "annotation")

LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """Claim one file of a known format, or a folder holding DICOM files; leave anything else to others."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(os.fspath(path))
    if path.is_dir():
        return read_layers if looks_like_dicom_folder(path) else None
    if format_of(path) == ".dcm" or (path.is_file() and not path.suffix):
        return read_layers if is_dicom_seg(path) else None  # a DICOM SEG; single image slices are not volumes
    return read_layers if format_of(path) in FILE_FORMATS else None


def read_layers(path: str | list[str]) -> list[LayerData]:
    """One layer per file: Labels for Slicer segmentations and label maps, Image otherwise."""
    if isinstance(path, list):
        path = path[0]
    path = Path(os.fspath(path))
    if path.is_file() and is_dicom_seg(path):
        return [labels_layer_data(read_labels(path))]  # on the grid of the series beside it
    if path.is_file() and is_label_file(path):
        try:
            return [labels_layer_data(read_labels(path))]
        except InputError as exc:
            if "not a label volume" not in str(exc):
                raise
            # a probability map named "seg...": show it as the image it is
    image = read_image(path)
    for note in image.metadata.get(NOTES_KEY, ()):
        warnings.warn(note, stacklevel=2)  # napari shows a warning as a notification
    return [image_layer_data(image)]


def is_label_file(path: Path) -> bool:
    """Slicer segmentations always; other files when their name says so (images are never guessed
    from their values: an 8-bit MR would pass for a label map)."""
    if format_of(path) == ".seg.nrrd":
        return True
    name = path.name.lower()
    return any(hint in name for hint in LABEL_NAME_HINTS)


def image_layer_data(volume: Volume) -> LayerData:
    data, kwargs = volume_to_layer_data(volume)
    kwargs["contrast_limits"] = display_window(volume.array)
    kwargs["colormap"] = "gray"
    return data, kwargs, "image"


def labels_layer_data(labels: Volume, name: str | None = None) -> LayerData:
    """A labels volume as an editable Labels layer (contiguous, so painting is fast)."""
    data, kwargs = volume_to_layer_data(labels, contiguous=True)
    if not np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.int32)
    if name:
        kwargs["name"] = name
    kwargs = labels_layer_kwargs(
        kwargs, labels.metadata.get("class_names", {}), labels.metadata.get("class_colors", {})
    )
    return data, kwargs, "labels"
