"""Shared fixtures: where the real test volumes live, and small synthetic volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_fewshot3d.volume import Volume

#: Real CT/MR volumes with reference labels, kept beside the project (never copied into it).
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_path(*parts: str) -> Path:
    """A path inside ../shared/data, or skip the test with the reason when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (the shared data folder sits beside the repository)")
    return path


@pytest.fixture
def ct_paths() -> dict[str, Path]:
    folder = data_path("ct_abdomen")
    return {"image": folder / "image.nii.gz", "labels": folder / "reference_labels.nii.gz"}


def oblique_affine(spacing=(0.8, 0.9, 2.5), origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    """An LPS-like, slightly rotated voxel-to-RAS affine, to catch code that assumes a diagonal."""
    angle = np.deg2rad(7.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]) @ np.diag(
        [-1.0, -1.0, 1.0]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


@pytest.fixture
def blob_volume() -> tuple[Volume, Volume]:
    """A 40x36x30 image with two ellipsoids (classes 1 and 2) and its labels, on an oblique grid."""
    shape = (40, 36, 30)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    labels = np.zeros(shape, np.uint8)
    labels[((i - 14) / 8) ** 2 + ((j - 18) / 9) ** 2 + ((k - 15) / 10) ** 2 <= 1] = 1
    labels[((i - 30) / 5) ** 2 + ((j - 12) / 5) ** 2 + ((k - 14) / 7) ** 2 <= 1] = 2
    rng = np.random.default_rng(0)
    image = (labels * 100 + rng.normal(0, 10, shape)).astype(np.int16)
    affine = oblique_affine()
    return Volume(image, affine, "blobs"), Volume(labels, affine, "blobs_labels")


def ct_slab(first: int, stop: int) -> tuple[Volume, Volume]:
    """Axial slices [first, stop) of ct_abdomen and its reference labels, with the geometry of where they lie."""
    from napari_fewshot3d.volume_io import read_image, read_labels

    folder = data_path("ct_abdomen")
    image = read_image(folder / "image.nii.gz")
    reference = read_labels(folder / "reference_labels.nii.gz")
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, 2] * first
    slab = Volume(image.array[:, :, first:stop].copy(), affine, "slab")
    return slab, slab.with_array(reference.array[:, :, first:stop].copy())
