"""Sample volumes that exist on a fresh machine without network: files shipped inside installed packages.

nilearn ships the MNI152 (ICBM 2009a, symmetric) T1 template with grey- and white-matter
probability maps; thresholded at 0.5 they are the reference labels of the demo. The files are
located through the package's spec, without importing nilearn (whose import is slow).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .volume import Volume
from .volume_io import read_image

_MNI_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "grey_matter": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "white_matter": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@dataclass
class SampleCase:
    image: Volume
    reference: Volume
    class_names: dict[int, str]


def _nilearn_data_folder() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the sample volume comes with the nilearn package, which is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def mni152_brain(step: int = 2) -> SampleCase:
    """MNI152 T1 with grey matter = 1 and white matter = 2 (probability > 0.5).

    ``step`` keeps every step-th voxel along each axis (exact: the affine is scaled, nothing is
    interpolated): 2 gives a 99x117x95 volume at 2 mm, a size a laptop CPU segments in about a minute;
    1 is the full 1 mm template (197x233x189).
    """
    folder = _nilearn_data_folder()
    missing = [name for name in _MNI_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise InputError(f"nilearn's MNI152 template files are missing from {folder}: {', '.join(missing)}")
    full = read_image(folder / _MNI_FILES["t1"])
    image = Volume(
        full.array[::step, ::step, ::step].copy(), full.affine @ np.diag([step, step, step, 1.0]), "mni152_t1"
    )
    grey = read_image(folder / _MNI_FILES["grey_matter"]).array[::step, ::step, ::step]
    white = read_image(folder / _MNI_FILES["white_matter"]).array[::step, ::step, ::step]
    labels = np.zeros(image.shape, np.uint8)
    labels[(grey > 0.5) & (grey >= white)] = 1
    labels[(white > 0.5) & (white > grey)] = 2
    reference = image.with_array(labels, name="mni152_tissue")
    names = {1: "grey_matter", 2: "white_matter"}
    reference.metadata["class_names"] = names
    return SampleCase(image, reference, names)
