"""DICOM Segmentation objects (SEG), written and read with highdicom, so results go back to a PACS and its viewers.

A SEG can only be written for labels on the grid of an image read from a DICOM series: it references that series'
instances (one frame per source slice, empty frames left out) and copies its patient and study. Reading maps the
segments, in order, to label values 1, 2, ... on the grid of the series it references.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic_file import write_atomically
from .colors import class_color
from .dicom_series import DICOM_KEY, find_series, series_affine, series_identity
from .errors import InputError, first_line
from .version import __version__
from .volume import Volume

SEG_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.4"


def check_can_write_seg(image: Volume, path: str | os.PathLike) -> None:
    """Refuse before any long computation when the image did not come from a DICOM series."""
    if DICOM_KEY not in image.metadata:
        raise InputError(
            f"{path}: a DICOM SEG references the DICOM series it was made on, and {image.name or 'this image'} "
            "was not read from one; write .nii.gz, .nrrd or .seg.nrrd, or start from the DICOM series"
        )


def write_dicom_seg(
    labels: Volume, path: str | os.PathLike, names: dict[int, str] | None = None, colors: dict | None = None
) -> Path:
    """Write labels as a binary SEG: one segment per label value present, numbered in value order."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    check_can_write_seg(labels, path)
    identity = labels.metadata[DICOM_KEY]
    sources = _source_datasets(identity)
    if labels.shape != (int(sources[0].Columns), int(sources[0].Rows), len(sources)):
        raise InputError(f"{path}: labels of shape {labels.shape} are not on the grid of the DICOM series")
    values = [int(v) for v in np.unique(labels.array) if v != 0]
    if not values:
        raise InputError(f"{path}: the labels are empty; a DICOM SEG needs at least one segment")
    numbered = np.zeros(labels.shape, np.uint8 if len(values) < 256 else np.uint16)
    for number, value in enumerate(values, start=1):
        numbered[labels.array == value] = number
    algorithm = hd.AlgorithmIdentificationSequence(
        name="fewshot3d", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    descriptions = []
    for number, value in enumerate(values, start=1):
        rgb = [min(max(float(c), 0.0), 1.0) for c in list((colors or {}).get(value, class_color(value)))[:3]]
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=str((names or {}).get(value, f"class_{value}"))[:64],
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Tissue,
                # painted slices are the user's, every other slice the algorithm's
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
                algorithm_identification=algorithm,
                display_color=hd.color.CIELabColor.from_rgb(*(round(c * 255) for c in rgb)),
            )
        )
    frames = np.ascontiguousarray(numbered.transpose(2, 1, 0))  # (i, j, k) -> one (rows, columns) frame per slice

    def write(partial: Path) -> None:
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=int(sources[0].get("SeriesNumber", 0) or 0) + 1000,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="napari-fewshot3d",
            manufacturer_model_name="fewshot3d",
            software_versions=__version__,
            device_serial_number="none",
            series_description="fewshot3d segmentation",
            content_label="FEWSHOT3D",
            omit_empty_frames=True,
        )
        seg.save_as(str(partial))

    return write_atomically(path, write, "DICOM SEG", suffix=".dcm")


def _source_datasets(identity: dict) -> list:
    """The series' headers (no pixels), with the UIDs the reader had to fill in, so the SEG references them."""
    import pydicom

    datasets = []
    for index, file in enumerate(identity["files"]):
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except Exception as exc:  # moved or deleted since the image was read
            raise InputError(f"{file}: source slice of the DICOM series cannot be read ({first_line(exc)})") from None
        ds.SOPInstanceUID = identity["sop_instance_uids"][index]
        ds.SOPClassUID = ds.get("SOPClassUID") or identity["sop_class_uid"]
        ds.SeriesInstanceUID = identity["series_instance_uid"]
        ds.StudyInstanceUID = identity["study_instance_uid"]
        ds.FrameOfReferenceUID = identity["frame_of_reference_uid"]
        datasets.append(ds)
    return datasets


def is_dicom_seg(path: str | os.PathLike) -> bool:
    """True for a DICOM file whose SOP Class is Segmentation (reads a few header bytes only)."""
    import pydicom

    try:
        header = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:
        return False
    meta = getattr(header, "file_meta", None)
    return SEG_SOP_CLASS_UID in (str(header.get("SOPClassUID", "")), str(getattr(meta, "MediaStorageSOPClassUID", "")))


def read_dicom_seg(path: str | os.PathLike, reference: Volume | None = None) -> Volume:
    """Labels from a binary SEG on the grid of the series it references: ``reference`` when it is that series,
    else a series found in the SEG's folder or a folder beside it."""
    import highdicom as hd

    path = Path(path)
    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:
        raise InputError(f"{path}: not a readable DICOM SEG ({first_line(exc)})") from None
    if seg.segmentation_type != hd.seg.SegmentationTypeValues.BINARY:
        raise InputError(f"{path}: a {seg.segmentation_type.value} SEG; only binary segmentations can be read")
    series_uid, referenced = _referenced(seg)
    if reference is not None and DICOM_KEY in reference.metadata:
        identity = reference.metadata[DICOM_KEY]
        on_reference = identity["series_instance_uid"] == series_uid or referenced & set(identity["sop_instance_uids"])
    else:
        on_reference = False
    if on_reference:
        affine, uids = reference.affine, identity["sop_instance_uids"]
    else:
        folders = [path.parent, *sorted(p for p in path.parent.parent.iterdir() if p.is_dir() and p != path.parent)]
        hit = find_series(folders, series_uid, referenced)
        if hit is None:
            raise InputError(
                f"{path}: the DICOM series it references ({series_uid}) is not open and not in or beside its folder"
            )
        folder, series = hit
        affine, uids = series_affine(series, folder), series_identity(series)[0]["sop_instance_uids"]
    try:
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids, combine_segments=True, assert_missing_frames_are_empty=True
        )
    except Exception as exc:  # overlapping segments, frames of other instances
        raise InputError(f"{path}: segments cannot be read as one label map ({first_line(exc)})") from None
    array = np.ascontiguousarray(np.asarray(pixels).transpose(2, 1, 0))
    names, colors = {}, {}
    for number in seg.segment_numbers:
        description = seg.get_segment_description(number)
        names[int(number)] = str(description.segment_label)
        lab = getattr(description, "RecommendedDisplayCIELabValue", None)
        if lab is not None:
            colors[int(number)] = [c / 255 for c in hd.color.CIELabColor.from_dicom_value(lab).to_rgb()]
    metadata = {"class_names": names, "class_colors": colors}
    return Volume(array, affine, name=path.stem, metadata=metadata)


def _referenced(seg) -> tuple[str, set[str]]:
    """The Series Instance UID and SOP Instance UIDs a SEG references."""
    series_uid, uids = "", set()
    for item in seg.get("ReferencedSeriesSequence", []):
        series_uid = series_uid or str(item.SeriesInstanceUID)
        uids |= {str(i.ReferencedSOPInstanceUID) for i in item.get("ReferencedInstanceSequence", [])}
    return series_uid, uids
