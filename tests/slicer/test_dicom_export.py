"""The module's DICOM SEG export (FewShot3DLib.dicom_export): the files a DICOM-loaded volume came from, the refusal
for any other volume, and a SEG on the series' grid holding the segmentation's voxels."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from FewShot3DLib.dicom_export import source_files, write_seg_for_series
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import read_image, read_labels

from ..conftest import data_path


def test_a_volume_not_loaded_from_dicom_is_refused_in_one_line():
    with pytest.raises(InputError, match="was not loaded from DICOM"):
        source_files("MRHead", None, lambda uid: "")
    with pytest.raises(InputError, match="not in the DICOM database"):
        source_files("CT", "1.2.3 1.2.4", {"1.2.3": "/a.dcm"}.get)


def test_segmentation_on_the_volume_grid_becomes_a_seg_on_the_series(tmp_path):
    folder = data_path("ct_dicom_series")
    by_uid = {
        str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID): str(f)
        for f in folder.iterdir()
    }
    uids = " ".join(reversed(sorted(by_uid)))  # Slicer's order need not be the slices' order
    files = source_files("CT", uids, by_uid.get)
    image = read_image(folder)
    labels = np.zeros(image.shape, np.uint8)
    labels[200:260, 100:300, 5] = 1
    labels[50:90, 300:360, 12:15] = 2
    # Slicer may hold the same grid in another index order: here i is flipped (a LAS-stored label map)
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, image.shape[0] - 1
    on_volume = Volume(np.ascontiguousarray(labels[::-1]), image.affine @ flip, "CT")
    path = write_seg_for_series(on_volume, files, str(tmp_path / "ct.dcm"), {1: "liver", 2: "kidney"}, {})
    back = read_labels(path, reference=image)
    assert back.same_grid(image)
    np.testing.assert_array_equal(back.array, labels)
    assert back.metadata["class_names"] == {1: "liver", 2: "kidney"}
