"""Readers and writers keep shape, values, spacing, origin and direction exactly."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import format_of, read_image, read_labels, write_image, write_labels

from ..conftest import data_path

LABEL_EXTENSIONS = [".nii.gz", ".nii", ".nrrd", ".seg.nrrd"]


def assert_same_geometry(a: Volume, b: Volume) -> None:
    assert a.shape == b.shape
    # NIfTI stores the affine in float32: float tolerance only.
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("ext", LABEL_EXTENSIONS)
def test_labels_round_trip_on_an_oblique_grid(tmp_path, blob_volume, ext):
    _, labels = blob_volume
    path = write_labels(labels, tmp_path / f"labels{ext}", {1: "liver", 2: "spleen"})
    back = read_labels(path)
    assert_same_geometry(back, labels)
    np.testing.assert_array_equal(back.array, labels.array)
    if ext == ".seg.nrrd":
        assert back.metadata["class_names"] == {1: "liver", 2: "spleen"}
        assert len(back.metadata["class_colors"][1]) == 3


@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd"])
def test_image_round_trip_keeps_dtype_and_values(tmp_path, blob_volume, ext):
    image, _ = blob_volume
    back = read_image(write_image(image, tmp_path / f"image{ext}"))
    assert back.array.dtype == image.array.dtype
    np.testing.assert_array_equal(back.array, image.array)
    assert_same_geometry(back, image)


def test_mha_is_read_with_its_geometry(tmp_path, blob_volume):
    image, _ = blob_volume
    sitk_image = sitk.GetImageFromArray(image.array.transpose(2, 1, 0).copy())
    sitk_image.SetSpacing(image.spacing.tolist())
    sitk_image.SetOrigin(image.origin_lps.tolist())
    sitk_image.SetDirection(image.direction_lps.ravel().tolist())
    sitk.WriteImage(sitk_image, str(tmp_path / "image.mha"))
    back = read_image(tmp_path / "image.mha")
    np.testing.assert_array_equal(back.array, image.array)
    assert_same_geometry(back, image)


def test_writing_is_atomic_and_leaves_nothing_on_failure(tmp_path, blob_volume):
    _, labels = blob_volume
    with pytest.raises(InputError, match="unknown output format"):
        write_labels(labels, tmp_path / "labels.png")
    with pytest.raises(InputError, match="does not exist"):
        write_labels(labels, tmp_path / "missing" / "labels.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_bad_files_are_input_errors(tmp_path):
    (tmp_path / "notes.nii.gz").write_text("not an image")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="not a readable NIfTI"):
        read_image(tmp_path / "notes.nii.gz")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "absent.nrrd")
    with pytest.raises(InputError, match="no DICOM"):
        read_image(tmp_path)


def test_labels_must_be_whole_non_negative_numbers(tmp_path, blob_volume):
    image, _ = blob_volume
    write_image(image.with_array(image.array.astype(np.float32) / 7), tmp_path / "float.nii.gz")
    with pytest.raises(InputError, match="whole numbers"):
        read_labels(tmp_path / "float.nii.gz")
    write_image(image.with_array((image.array < 0).astype(np.int16) * -3), tmp_path / "neg.nii.gz")
    with pytest.raises(InputError, match="negative"):
        read_labels(tmp_path / "neg.nii.gz")


def test_format_of_handles_double_extensions():
    assert format_of("a/b.SEG.NRRD") == ".seg.nrrd"
    assert format_of("scan.nii.gz") == ".nii.gz"
    assert format_of("scan.mha") == ".mha"


def test_dicom_series_reads_as_a_512x512x20_volume_in_lps():
    folder = data_path("ct_dicom_series")
    volume = read_image(folder)
    assert volume.shape == (512, 512, 20)
    np.testing.assert_allclose(volume.spacing, [0.9765625, 0.9765625, 2.0], atol=1e-6)
    # Axial series: i runs to patient left (RAS -x), j to posterior (RAS -y), k along S.
    np.testing.assert_allclose(volume.affine[:3, :3] / volume.spacing, np.diag([-1.0, -1.0, 1.0]), atol=1e-6)
    assert volume.slicing_axis("axial") == 2
    # The origin is the position of the first slice in z, as its DICOM header states it.
    positions = []
    for name in sorted(p.name for p in folder.iterdir()):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(folder / name))
        reader.ReadImageInformation()
        positions.append([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
    first = min(positions, key=lambda p: p[2])
    np.testing.assert_allclose(volume.origin_lps, first, atol=1e-3)
    # And the HU values survive (rescale applied): air and soft tissue both present.
    assert volume.array.min() <= -900 and volume.array.max() >= 100


@pytest.mark.parametrize("ext", LABEL_EXTENSIONS)
def test_real_ct_labels_round_trip(tmp_path, ct_paths, ext):
    labels = read_labels(ct_paths["labels"])
    back = read_labels(write_labels(labels, tmp_path / f"ref{ext}"))
    assert_same_geometry(back, labels)
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.same_grid(read_image(ct_paths["image"]))
