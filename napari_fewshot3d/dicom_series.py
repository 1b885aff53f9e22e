"""DICOM image series: find one in a folder, check that its slices make a regular grid, read it.

The geometry is computed from the headers (Image Position/Orientation, Pixel Spacing), after checking that every
slice is there and evenly spaced, so that a missing slice is an error instead of a silently stretched volume. The
series' identity (files in slice order, SOP Instance UIDs, Frame of Reference, Study and Series UIDs) travels in
``Volume.metadata["dicom"]`` so that a DICOM SEG written for this image (or a result derived from it) references it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, first_line
from .volume import LPS_FROM_RAS, Volume

#: Key of the series' identity in ``Volume.metadata``.
DICOM_KEY = "dicom"

#: Key of messages a front end should show the user (a chosen series, derived UIDs).
NOTES_KEY = "notes"

#: Slice gaps may differ by this fraction of the median gap (rounding in the headers), not more.
GAP_TOLERANCE = 0.05


@dataclass
class Series:
    """The slices of one series, sorted along the slice normal, with the grid they make."""

    uid: str
    files: list[str] = field(default_factory=list)
    headers: list = field(default_factory=list)

    @property
    def description(self) -> str:
        text = str(self.headers[0].get("SeriesDescription", "") or "").strip() if self.headers else ""
        return f"{self.uid or '(no UID)'} ({len(self.files)} slices{', ' + text if text else ''})"


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read one image series of a folder (the one named, else the largest, saying so) as a checked 3D volume."""
    import SimpleITK as sitk

    folder = Path(folder)
    series, notes = choose_series(folder, series_uid)
    affine = series_affine(series, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series.files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{folder}: DICOM series could not be read ({first_line(exc)})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{folder}: the DICOM series is not a scalar 3D image")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (k, j, i) -> (i, j, k)
    identity, derived = series_identity(series)
    if derived:
        notes.append(
            f"{folder}: the series has no {' or '.join(derived)} (anonymised?); a DICOM SEG written for it "
            "references one derived from its instances, which a PACS will not know"
        )
    metadata = {DICOM_KEY: identity, NOTES_KEY: notes}
    return Volume(np.ascontiguousarray(array), affine, name=folder.name, metadata=metadata)


def scan_folder(folder: Path) -> dict[str, Series]:
    """The image series of a folder by Series Instance UID; files that are not DICOM images are skipped."""
    import pydicom

    found: dict[str, Series] = {}
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise InputError(f"{folder}: folder cannot be read ({exc.strerror or exc})") from None
    for entry in entries:
        try:
            header = pydicom.dcmread(str(entry), stop_before_pixels=True)
        except Exception:  # not DICOM, truncated, unreadable: not a slice of any series
            continue
        if "ImagePositionPatient" not in header or "ImageOrientationPatient" not in header or "Rows" not in header:
            continue  # a DICOMDIR, a report, a segmentation: no image plane
        if int(header.get("NumberOfFrames", 1) or 1) != 1:
            continue  # a multi-frame object is not one slice of a series
        uid = str(header.get("SeriesInstanceUID", "") or "")
        series = found.setdefault(uid, Series(uid))
        series.files.append(str(entry))
        series.headers.append(header)
    return found


def choose_series(folder: Path, series_uid: str | None = None) -> tuple[Series, list[str]]:
    """The named series, or the largest with a note naming the others; sorted along its slice normal."""
    found = scan_folder(folder)
    if not found:
        raise InputError(f"{folder}: folder holds no DICOM image series")
    notes: list[str] = []
    if series_uid is not None:
        if series_uid not in found:
            listed = "; ".join(s.description for s in found.values())
            raise InputError(f"{folder}: no series with UID {series_uid}; the folder holds {listed}")
        series = found[series_uid]
    else:
        ranked = sorted(found.values(), key=lambda s: (-len(s.files), s.uid))
        series = ranked[0]
        if len(ranked) > 1:
            others = "; ".join(s.description for s in ranked[1:])
            notes.append(
                f"{folder}: {len(ranked)} series; reading {series.description}, not {others} (choose with --series UID)"
            )
    return sort_series(series, folder), notes


def _plane(header) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cosines = np.array([float(v) for v in header.ImageOrientationPatient], dtype=float)
    row, col = cosines[:3], cosines[3:]
    return row, col, np.cross(row, col)


def sort_series(series: Series, folder: Path) -> Series:
    """Slices sorted by position along the normal; refused when they do not share one plane orientation and size."""
    first = series.headers[0]
    row, col, normal = _plane(first)
    for header in series.headers:
        r, c, _ = _plane(header)
        if not (np.allclose(r, row, atol=1e-4) and np.allclose(c, col, atol=1e-4)):
            raise InputError(f"{folder}: the series' slices have different orientations, not one 3D grid")
        if (header.Rows, header.Columns) != (first.Rows, first.Columns) or not np.allclose(
            [float(v) for v in header.PixelSpacing], [float(v) for v in first.PixelSpacing], atol=1e-4
        ):
            raise InputError(f"{folder}: the series' slices differ in size or pixel spacing, not one 3D grid")
    depth = [float(np.dot(normal, [float(v) for v in h.ImagePositionPatient])) for h in series.headers]
    order = np.argsort(depth, kind="stable")
    return Series(series.uid, [series.files[i] for i in order], [series.headers[i] for i in order])


def series_affine(series: Series, folder: Path) -> np.ndarray:
    """Voxel (i = column, j = row, k = slice) to RAS affine, after checking the slices are distinct and even."""
    if len(series.files) < 2:
        raise InputError(f"{folder}: the DICOM series has a single slice, not a 3D volume")
    row, col, normal = _plane(series.headers[0])
    positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in series.headers])
    gaps = np.diff(positions @ normal)
    step = float(np.median(gaps))
    if np.min(gaps) < 1e-3 * max(step, 1e-6):
        raise InputError(f"{folder}: two slices of the series lie at the same position (a duplicate or a 4D series)")
    uneven = np.flatnonzero(np.abs(gaps - step) > GAP_TOLERANCE * step)
    if uneven.size:
        n = int(uneven[0])
        raise InputError(
            f"{folder}: slices are unevenly spaced ({gaps[n]:.2f} mm between slices {n + 1} and {n + 2}, "
            f"{step:.2f} mm elsewhere): a slice is missing, or the series is not one regular 3D grid"
        )
    row_spacing, col_spacing = (float(v) for v in series.headers[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = row * col_spacing  # i runs along a row: the next column
    lps[:3, 1] = col * row_spacing  # j runs down a column: the next row
    lps[:3, 2] = (positions[-1] - positions[0]) / (len(positions) - 1)
    lps[:3, 3] = positions[0]
    return LPS_FROM_RAS @ lps


def series_identity(series: Series) -> tuple[dict, list[str]]:
    """What a DICOM SEG needs to reference the series; UIDs the headers lack are filled from the file meta or
    derived (deterministically, from the instances) and named in the second value."""
    from pydicom.uid import generate_uid

    first = series.headers[0]
    derived: list[str] = []
    sop_uids = []
    for header in series.headers:
        uid = str(header.get("SOPInstanceUID", "") or "")
        if not uid:
            meta = getattr(header, "file_meta", None)
            uid = str(getattr(meta, "MediaStorageSOPInstanceUID", "") or "") if meta is not None else ""
        sop_uids.append(uid)
    if not all(sop_uids) or len(set(sop_uids)) != len(sop_uids):
        sop_uids = [generate_uid(entropy_srcs=[f]) for f in series.files]
        derived.append("SOP Instance UIDs")
    sop_class = str(first.get("SOPClassUID", "") or "") or str(
        getattr(getattr(first, "file_meta", None), "MediaStorageSOPClassUID", "") or ""
    )
    identity = {
        "files": list(series.files),
        "sop_instance_uids": sop_uids,
        "sop_class_uid": sop_class,
        "frame_of_reference_uid": str(first.get("FrameOfReferenceUID", "") or ""),
    }
    for key, keyword, name in (
        ("series_instance_uid", "SeriesInstanceUID", "Series Instance UID"),
        ("study_instance_uid", "StudyInstanceUID", "Study Instance UID"),
    ):
        identity[key] = str(first.get(keyword, "") or "")
        if not identity[key]:
            identity[key] = generate_uid(entropy_srcs=[key, *sop_uids])
            derived.append(name)
    if not identity["frame_of_reference_uid"]:
        identity["frame_of_reference_uid"] = generate_uid(entropy_srcs=["frame", *sop_uids])
        derived.append("Frame of Reference UID")
    return identity, derived


def find_series(folders: list[Path], series_uid: str, sop_uids: set[str]) -> tuple[Path, Series] | None:
    """The first folder holding a series with this UID (or, for series without one, these instances)."""
    for folder in folders:
        try:
            found = scan_folder(folder)
        except InputError:
            continue
        for series in found.values():
            identity, _ = series_identity(series)
            if identity["series_instance_uid"] == series_uid or sop_uids & set(identity["sop_instance_uids"]):
                return folder, sort_series(series, folder)
    return None


def series_of_files(files: list[str], where: str) -> tuple[np.ndarray, tuple[int, int, int], dict]:
    """Grid (affine, shape) and identity of a series given as its files (a DICOM database's), without its pixels."""
    import pydicom

    series = Series("")
    for file in files:
        try:
            series.headers.append(pydicom.dcmread(file, stop_before_pixels=True))
        except Exception as exc:
            raise InputError(f"{file}: a slice of {where} cannot be read ({first_line(exc)})") from None
        series.files.append(str(file))
    if not series.headers or "ImagePositionPatient" not in series.headers[0]:
        raise InputError(f"{where}: its DICOM files hold no image slices")
    series = sort_series(series, Path(where))
    affine = series_affine(series, Path(where))
    shape = (int(series.headers[0].Columns), int(series.headers[0].Rows), len(series.files))
    return affine, shape, series_identity(series)[0]
