"""Read images and label volumes from NIfTI, NRRD, MHA/MHD, Slicer .seg.nrrd, DICOM series and SEG; write labels.

Every reader returns a :class:`Volume` indexed (i, j, k) with its exact voxel-to-RAS affine, and
every writer puts that geometry back, so that a mask lines up with its image in any viewer.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from .atomic_file import write_atomically
from .dicom_seg import check_can_write_seg, is_dicom_seg, read_dicom_seg, write_dicom_seg
from .dicom_series import read_dicom_series
from .errors import InputError, first_line
from .volume import LPS_FROM_RAS, Volume

LABEL_FORMATS = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".dcm")

#: Key of the NIfTI qform and sform codes of an image read from NIfTI (labels written for it keep them).
NIFTI_CODES_KEY = "nifti_codes"
_SITK_IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def format_of(path: str | os.PathLike) -> str:
    """The file format of a path by its (possibly double) extension, lower case, with the dot."""
    name = Path(path).name.lower()
    for suffix in (".seg.nrrd", ".nii.gz"):
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


# ----------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike, series: str | None = None) -> Volume:
    """Read a 3D image (file or DICOM series folder; ``series``: the Series Instance UID to read from it)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return read_dicom_series(path, series)
    if series is not None:
        raise InputError(f"{path}: --series chooses a series in a DICOM folder, and this is a file")
    fmt = format_of(path)
    if fmt == ".seg.nrrd":
        return read_labels(path)
    if fmt in (".nii", ".nii.gz"):
        return _read_nifti(path)
    return _read_with_sitk(path)


def read_labels(path: str | os.PathLike, reference: Volume | None = None) -> Volume:
    """Read a label volume; class names (if the file has them) go to ``metadata['class_names']``.

    Slicer .seg.nrrd files and DICOM SEG keep their segment names and colours; overlapping segments
    are refused, since one voxel can only carry one class here. A DICOM SEG takes the grid of the
    series it references: ``reference`` when that is the series, else one found beside the SEG.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if format_of(path) == ".seg.nrrd":
        volume = _read_seg_nrrd(path)
    elif format_of(path) == ".dcm" or (path.is_file() and is_dicom_seg(path)):
        volume = read_dicom_seg(path, reference)
    else:
        volume = read_image(path)
    array = volume.array
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise InputError(f"{path}: not a label volume (voxel values are not whole numbers)")
        array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise InputError(f"{path}: not a label volume (negative voxel values)")
    volume.array = array.astype(smallest_label_dtype(int(array.max()) if array.size else 0), copy=False)
    return volume


def smallest_label_dtype(max_value: int) -> np.dtype:
    return np.dtype(np.uint8 if max_value <= 255 else np.uint16 if max_value <= 65535 else np.uint32)


def _read_nifti(path: Path) -> Volume:
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for a broken file
        raise InputError(f"{path}: not a readable NIfTI image ({first_line(exc)})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: not a 3D image (shape {data.shape})")
    codes = {"qform": int(img.header["qform_code"]), "sform": int(img.header["sform_code"])}
    return Volume(np.ascontiguousarray(data), img.affine, name=image_stem(path), metadata={NIFTI_CODES_KEY: codes})


def _read_with_sitk(path: Path) -> Volume:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: not a readable image ({first_line(exc)})") from None
    return _volume_from_sitk(image, path)


def _volume_from_sitk(image, path: Path) -> Volume:
    import SimpleITK as sitk

    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise InputError(f"{path}: not a 3D image ({image.GetDimension()} dimensions)")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: not a scalar image ({image.GetNumberOfComponentsPerPixel()} components per voxel)")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (k, j, i) -> (i, j, k)
    return Volume(np.ascontiguousarray(array), affine_from_itk(image), name=image_stem(path))


def affine_from_itk(image) -> np.ndarray:
    """Voxel index -> RAS affine from an ITK/SimpleITK image's origin, spacing and direction (LPS)."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(image.GetSpacing(), dtype=float)
    lps[:3, 3] = image.GetOrigin()
    return LPS_FROM_RAS @ lps


def _read_seg_nrrd(path: Path) -> Volume:
    import slicerio

    try:
        seg = slicerio.read_segmentation(str(path))
    except Exception as exc:
        raise InputError(f"{path}: not a readable Slicer segmentation ({first_line(exc)})") from None
    voxels = np.asarray(seg["voxels"])
    if voxels.ndim == 4:
        raise InputError(f"{path}: segments overlap (several layers); export them without overlap")
    affine = LPS_FROM_RAS @ np.asarray(seg["ijkToLPS"], dtype=float)
    names, colors = {}, {}
    for segment in seg.get("segments", []):
        value = int(segment.get("labelValue", 0))
        if value:
            names[value] = str(segment.get("name", segment.get("id", value)))
            if "color" in segment:
                colors[value] = [float(c) for c in segment["color"]]
    metadata = {"class_names": names, "class_colors": colors}
    return Volume(np.ascontiguousarray(voxels), affine, name=image_stem(path), metadata=metadata)


# ----------------------------------------------------------------------------- writing


def check_writable(path: str | os.PathLike) -> None:
    """Fail early, before any long computation, when a labels file cannot be written at ``path``."""
    path = Path(path)
    if format_of(path) not in LABEL_FORMATS:
        raise InputError(f"{path}: unknown output format; use one of {', '.join(LABEL_FORMATS)}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: output folder {folder} does not exist")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fewshot3d-check-"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: output is not writable ({exc.strerror or exc})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{path}: output exists and is not writable")


def check_writable_for(image: Volume, path: str | os.PathLike) -> None:
    """:func:`check_writable`, and for a DICOM SEG that ``image`` came from the DICOM series it will reference."""
    check_writable(path)
    if format_of(path) == ".dcm":
        check_can_write_seg(image, path)


def write_labels(
    volume: Volume,
    path: str | os.PathLike,
    class_names: dict[int, str] | None = None,
    class_colors: dict[int, list[float]] | None = None,
) -> Path:
    """Write a label volume with its geometry; the format follows the extension.

    .seg.nrrd keeps class names and colours as Slicer segments; NIfTI and NRRD keep the values.
    """
    array = volume.array
    labels = volume.with_array(array.astype(smallest_label_dtype(int(array.max()) if array.size else 0)))
    if format_of(path) == ".dcm":
        check_writable(path)
        return write_dicom_seg(labels, path, class_names, class_colors)
    if format_of(path) == ".seg.nrrd":
        return _write_atomically(
            path, lambda tmp: _write_seg_nrrd(labels, tmp, class_names or {}, class_colors or {}), "labels"
        )
    return write_image(labels, path, what="labels")


def write_image(volume: Volume, path: str | os.PathLike, what: str = "image") -> Path:
    """Write any scalar volume (values and dtype as they are) to NIfTI or NRRD with its geometry."""
    fmt = format_of(path)
    if fmt in (".nii", ".nii.gz"):
        return _write_atomically(path, lambda tmp: _write_nifti(volume, tmp), what)
    if fmt == ".nrrd":
        return _write_atomically(path, lambda tmp: _write_with_sitk(volume, tmp), what)
    raise InputError(f"{path}: unknown output format; use one of {', '.join(LABEL_FORMATS)}")


def _write_atomically(path: str | os.PathLike, write: Callable[[str], None], what: str) -> Path:
    """A checked destination, then :func:`write_atomically` with the format's extension on the temporary file."""
    check_writable(path)
    return write_atomically(path, lambda partial: write(str(partial)), what, suffix=format_of(path))


def _write_nifti(volume: Volume, filename: str) -> None:
    """NIfTI with the source's qform/sform codes when it came from NIfTI (a viewer may trust one, not the other)."""
    codes = volume.metadata.get(NIFTI_CODES_KEY) or {"qform": 1, "sform": 1}
    img = nib.Nifti1Image(volume.array, volume.affine)
    img.set_qform(volume.affine, code=int(codes["qform"]))
    img.set_sform(volume.affine, code=int(codes["sform"]))
    img.header.set_xyzt_units("mm")
    nib.save(img, filename)


def _sitk_from_volume(volume: Volume):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in volume.spacing])
    image.SetOrigin([float(o) for o in volume.origin_lps])
    image.SetDirection([float(d) for d in volume.direction_lps.ravel()])
    return image


def _write_with_sitk(volume: Volume, filename: str) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(_sitk_from_volume(volume), filename, useCompression=True)


def _write_seg_nrrd(volume: Volume, filename: str, names: dict[int, str], colors: dict[int, list[float]]) -> None:
    import slicerio

    from .colors import class_color

    segments = []
    for value in sorted(int(v) for v in np.unique(volume.array) if v != 0):
        segments.append(
            {
                "id": f"Segment_{value}",
                "name": names.get(value, f"class_{value}"),
                "labelValue": value,
                "layer": 0,
                "color": list(colors.get(value, class_color(value))),
            }
        )
    segmentation = {
        "voxels": volume.array,
        "ijkToLPS": volume.affine_lps,
        "segments": segments,
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
    }
    slicerio.write_segmentation(filename, segmentation)


def looks_like_dicom_folder(folder: Path, probe: int = 20) -> bool:
    """True when one of the first files has the DICOM preamble (cheap: no DICOM library involved)."""
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file())[:probe]
    except OSError:
        return False
    for entry in entries:
        try:
            with entry.open("rb") as handle:
                handle.seek(128)
                if handle.read(4) == b"DICM":
                    return True
        except OSError:
            continue
    return False


def image_stem(path: Path) -> str:
    name = path.name
    for suffix in (".seg.nrrd", ".nii.gz", *LABEL_FORMATS, *_SITK_IMAGE_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
