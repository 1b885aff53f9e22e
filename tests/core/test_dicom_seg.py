"""DICOM in and out on the shared CT series: SEG written and read back, series reading that refuses a bad folder.

Variants of the series (a stray file, a missing slice, a second series) are built by copying its files into the
test's own tmp folder; the shared data is never changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from napari_fewshot3d.dicom_series import DICOM_KEY, NOTES_KEY
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import read_image, read_labels, write_labels

from ..conftest import assert_input_error, data_path, fewshot3d

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


@pytest.fixture(scope="module")
def series() -> Path:
    return data_path("ct_dicom_series")


@pytest.fixture(scope="module")
def ct(series) -> Volume:
    return read_image(series)


def _painted(image: Volume) -> np.ndarray:
    labels = np.zeros(image.shape, np.uint8)
    labels[150:300, 180:330, 3:9] = 1
    labels[320:380, 200:280, 11:14] = 2
    labels[330:370, 210:260, 16] = 2
    return labels


def _copy_series(source: Path, target: Path, skip: tuple[int, ...] = ()) -> list[Path]:
    target.mkdir(parents=True)
    files = sorted(source.iterdir())
    for index, file in enumerate(files):
        if index not in skip:
            shutil.copy(file, target / file.name)
    return files


def _file_meta_uids(folder: Path) -> set[str]:
    return {
        str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID) for f in folder.iterdir()
    }


def test_seg_holds_the_nifti_voxels_and_references_the_series(ct, series, tmp_path):
    labels = ct.with_array(_painted(ct))
    names, colors = {1: "liver", 2: "spleen"}, {2: [0.0, 0.0, 1.0]}
    seg_path = write_labels(labels, tmp_path / "result.dcm", names, colors)
    nifti = read_labels(write_labels(labels, tmp_path / "result.nii.gz"))
    back = read_labels(seg_path, reference=ct)
    assert back.same_grid(ct)
    np.testing.assert_array_equal(back.array, nifti.array)
    assert back.metadata["class_names"] == names
    np.testing.assert_allclose(back.metadata["class_colors"][2], [0.0, 0.0, 1.0], atol=0.03)

    ds = pydicom.dcmread(seg_path)
    source = pydicom.dcmread(next(series.iterdir()), stop_before_pixels=True)
    assert ds.SOPClassUID == SEG_CLASS and ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert ds.StudyInstanceUID == ct.metadata[DICOM_KEY]["study_instance_uid"]
    assert ds.PatientID == source.PatientID
    referenced = ds.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == ct.metadata[DICOM_KEY]["series_instance_uid"]
    assert {str(i.ReferencedSOPInstanceUID) for i in referenced.ReferencedInstanceSequence} == _file_meta_uids(series)
    # empty frames left out: one frame per (segment, slice) that holds the segment
    assert int(ds.NumberOfFrames) == 6 + 4
    segments = ds.SegmentSequence
    assert [s.SegmentLabel for s in segments] == ["liver", "spleen"]
    assert all(s.SegmentAlgorithmType == "SEMIAUTOMATIC" for s in segments)
    assert segments[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "fewshot3d"
    assert segments[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "85756007"  # SCT Tissue
    assert len(segments[1].RecommendedDisplayCIELabValue) == 3


def test_seg_finds_its_series_beside_it_and_numbers_segments_in_order(ct, series, tmp_path):
    _copy_series(series, tmp_path / "ct")
    labels = np.zeros(ct.shape, np.uint8)
    labels[10:50, 10:60, 2] = 4
    labels[100:120, 10:60, 7] = 9
    (tmp_path / "seg").mkdir()
    seg_path = write_labels(ct.with_array(labels), tmp_path / "seg" / "out.dcm")
    back = read_labels(seg_path)  # no image given: the series is found in the folder beside
    assert back.same_grid(ct)
    np.testing.assert_array_equal(back.array, np.select([labels == 4, labels == 9], [1, 2], 0))
    shutil.rmtree(tmp_path / "ct")
    with pytest.raises(InputError, match="references"):
        read_labels(seg_path)


def test_seg_is_refused_for_an_image_not_read_from_dicom(ct, tmp_path):
    image = Volume(np.zeros((8, 8, 4), np.int16), np.eye(4), "plain")
    with pytest.raises(InputError, match="not read from"):
        write_labels(image.with_array(np.ones((8, 8, 4), np.uint8)), tmp_path / "x.dcm")
    assert not list(tmp_path.iterdir())


def test_stray_files_in_the_folder_are_skipped(ct, series, tmp_path):
    folder = tmp_path / "ct"
    _copy_series(series, folder)
    (folder / "README.txt").write_text("not DICOM")
    write_labels(ct.with_array(_painted(ct)), folder / "seg.dcm")  # a DICOM object that is not an image slice
    volume = read_image(folder)
    assert volume.same_grid(ct)
    np.testing.assert_array_equal(volume.array, ct.array)
    assert volume.metadata[DICOM_KEY]["sop_instance_uids"] == ct.metadata[DICOM_KEY]["sop_instance_uids"]


def test_a_missing_slice_is_an_error_not_a_stretched_volume(series, tmp_path):
    _copy_series(series, tmp_path / "ct", skip=(9,))
    with pytest.raises(InputError, match="unevenly spaced.*missing"):
        read_image(tmp_path / "ct")
    _copy_series(series, tmp_path / "one", skip=tuple(range(1, 20)))
    with pytest.raises(InputError, match="single slice"):
        read_image(tmp_path / "one")


def test_several_series_the_largest_is_read_with_a_note_or_the_one_named(ct, series, tmp_path):
    folder = tmp_path / "ct"
    files = _copy_series(series, folder)
    for index, file in enumerate(files[:5]):
        ds = pydicom.dcmread(file)
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.1.{index + 1}"
        ds.save_as(folder / f"other{index}.dcm")
    chosen = read_image(folder)
    assert chosen.shape == ct.shape
    assert any("2 series" in note and "--series" in note for note in chosen.metadata[NOTES_KEY])
    other = read_image(folder, series="1.2.826.0.1.3680043.8.498.1")
    assert other.shape == (512, 512, 5)
    # the first five files by name are the five top slices: k = 15..19 of the whole series
    np.testing.assert_allclose(other.affine[:, :3], ct.affine[:, :3], atol=1e-6)
    np.testing.assert_allclose(other.affine[:, 3], ct.affine @ [0, 0, 15, 1], atol=1e-4)
    np.testing.assert_array_equal(other.array, ct.array[:, :, 15:])
    with pytest.raises(InputError, match="no series with UID 9.9"):
        read_image(folder, series="9.9")


def test_nifti_labels_keep_the_source_qform_and_sform_codes(tmp_path):
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    img = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), affine)
    img.set_qform(affine, code=0)
    img.set_sform(affine, code=2)
    nib.save(img, tmp_path / "image.nii.gz")
    image = read_image(tmp_path / "image.nii.gz")
    written = nib.load(write_labels(image.with_array(np.ones(image.shape, np.uint8)), tmp_path / "labels.nii.gz"))
    assert (int(written.header["qform_code"]), int(written.header["sform_code"])) == (0, 2)
    np.testing.assert_allclose(written.affine, affine)


@pytest.mark.slow
def test_cli_writes_a_seg_that_reads_back_as_support(ct, series, tmp_path):
    """Done when: segment DICOM_FOLDER --support ... --out seg.dcm, and that SEG is a support for the next run."""
    painted = ct.with_array(_painted(ct))
    painted.array[:, :, 4:8] = 0  # slices 3 and 8 painted: the interpolation fills 4..7
    write_labels(painted, tmp_path / "painted.nii.gz")
    seg_path = tmp_path / "seg.dcm"
    first = fewshot3d(
        "segment", series, "--support", tmp_path / "painted.nii.gz", "--out", seg_path, "--backend", "interpolate"
    )
    assert first.returncode == 0, first.stderr
    assert "note:" in first.stderr  # the shared series is anonymised: its series UID is derived, and said so
    seg = read_labels(seg_path, reference=ct)
    for k in (3, 8, 11, 12, 13, 16):  # painted slices come back as painted
        np.testing.assert_array_equal(seg.array[:, :, k], painted.array[:, :, k])
    assert all((seg.array[:, :, k] == 1).any() for k in range(4, 8))  # and the slices between are filled
    # Every slice of the SEG's extent is painted now, so filling between them changes nothing: same voxels back.
    second = fewshot3d(
        "segment", series, "--support", seg_path, "--out", tmp_path / "again.nii.gz", "--backend", "interpolate"
    )
    assert second.returncode == 0, second.stderr
    again = read_labels(tmp_path / "again.nii.gz")
    assert again.same_grid(ct)
    np.testing.assert_array_equal(again.array, seg.array)


def test_cli_refuses_a_seg_for_a_non_dicom_input(tmp_path):
    image = Volume(np.zeros((16, 16, 6), np.int16), np.eye(4), "plain")
    write_labels(image.with_array(np.zeros(image.shape, np.uint8)), tmp_path / "image.nii.gz")
    labels = np.zeros(image.shape, np.uint8)
    labels[4:9, 4:9, 1] = labels[4:9, 4:9, 4] = 1
    write_labels(image.with_array(labels), tmp_path / "support.nii.gz")
    result = fewshot3d(
        "segment",
        tmp_path / "image.nii.gz",
        "--support",
        tmp_path / "support.nii.gz",
        "--out",
        tmp_path / "o.dcm",
        "--backend",
        "interpolate",
    )
    assert_input_error(result, "not read from")
    assert not (tmp_path / "o.dcm").exists()
