"""A volume: a voxel array plus its exact place in the world.

Inside the engine every array is indexed (i, j, k) — the voxel index order of NIfTI, ITK and
Slicer's IJK — and ``affine`` maps (i, j, k, 1) to world RAS millimetres (Slicer's IJKToRAS).
Readers and front ends convert at the edges, so geometry never has to be guessed in between.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

#: Slicing axes by the world axis their slices are perpendicular to (RAS: 0=R, 1=A, 2=S).
AXIS_NAMES = {"sagittal": 0, "coronal": 1, "axial": 2}

#: Voxel centres closer than this fraction of a voxel count as the same place.
GRID_TOLERANCE = 1e-3

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """A 3D array on a grid with known world geometry."""

    array: np.ndarray
    affine: np.ndarray
    name: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        self.affine = np.asarray(self.affine, dtype=float)
        if self.array.ndim != 3:
            raise InputError(f"{self.name or 'volume'} is not a 3D image (shape {self.array.shape})")
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if abs(np.linalg.det(self.affine[:3, :3])) < 1e-12:
            raise InputError(f"{self.name or 'volume'} has a degenerate voxel-to-world matrix")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along i, j, k."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def origin_lps(self) -> np.ndarray:
        """World position of voxel (0, 0, 0) in LPS, as ITK and DICOM state it."""
        return (LPS_FROM_RAS @ self.affine)[:3, 3]

    @property
    def direction_lps(self) -> np.ndarray:
        """Unit direction cosines (columns = i, j, k) in LPS, as ITK states them."""
        return (LPS_FROM_RAS @ self.affine)[:3, :3] / self.spacing

    @property
    def affine_lps(self) -> np.ndarray:
        return LPS_FROM_RAS @ self.affine

    def with_array(self, array: np.ndarray, name: str | None = None) -> Volume:
        """The same grid and geometry with other voxel values (a mask, a prediction)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from the volume's {self.array.shape}")
        return Volume(array, self.affine.copy(), self.name if name is None else name, dict(self.metadata))

    def fingerprint(self) -> tuple:
        """What identifies these voxels on this grid: learners reuse what they computed only for the very same image."""
        digest = hashlib.blake2b(np.ascontiguousarray(self.array).tobytes(), digest_size=16).hexdigest()
        return self.shape, str(self.array.dtype), digest, np.round(self.affine, 4).tobytes()

    def slicing_axis(self, axis: str | int) -> int:
        """The array axis whose slices are axial / coronal / sagittal for this volume's orientation."""
        if isinstance(axis, (int, np.integer)):
            if not 0 <= int(axis) < 3:
                raise InputError(f"axis must be 0, 1 or 2, got {axis}")
            return int(axis)
        if axis not in AXIS_NAMES:
            raise InputError(f"unknown axis {axis!r}: choose axial, coronal or sagittal")
        world_axis = AXIS_NAMES[axis]
        return int(np.flatnonzero(world_axis_of_array_axes(self.affine) == world_axis)[0])

    def same_grid(self, other: Volume) -> bool:
        """True when both volumes put the same voxel centres at the same world positions."""
        if self.shape != other.shape:
            return False
        tol = GRID_TOLERANCE * float(self.spacing.min())
        return bool(np.allclose(self.affine, other.affine, atol=tol, rtol=0))


def world_axis_of_array_axes(affine: np.ndarray) -> np.ndarray:
    """For each array axis, the RAS world axis it runs closest to (a permutation of 0, 1, 2).

    Greedy on the largest direction cosine first, so that oblique acquisitions still get a
    unique, sensible assignment.
    """
    cosines = np.abs(affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0))
    result = np.full(3, -1)
    for _ in range(3):
        world, array_axis = np.unravel_index(np.argmax(cosines), cosines.shape)
        result[array_axis] = world
        cosines[world, :] = -1
        cosines[:, array_axis] = -1
    return result


def resample_onto_grid(source: Volume, target: Volume, what: str = "labels") -> Volume:
    """Bring ``source`` onto ``target``'s grid when it holds the same voxels in another axis order or flip.

    A labels file saved as LAS for an image read as LPS is the same grid stored differently: this
    permutes and flips the array exactly (no interpolation). Any other difference is refused,
    because resampling a user's painted slices would silently change them.
    """
    if source.same_grid(target):
        return source
    # Where does each source voxel index land in target index space?
    index_map = np.linalg.solve(target.affine, source.affine)
    linear = index_map[:3, :3]
    perm = np.rint(linear)
    tol = GRID_TOLERANCE * 10
    is_signed_permutation = (
        np.allclose(linear, perm, atol=tol)
        and np.all(np.abs(perm).sum(axis=0) == 1)
        and np.all(np.abs(perm).sum(axis=1) == 1)
    )
    if not is_signed_permutation:
        raise InputError(f"{what} grid or geometry differs from the image's (different spacing or orientation)")
    offset = index_map[:3, 3]
    if not np.allclose(offset, np.rint(offset), atol=tol):
        raise InputError(f"{what} voxels are shifted against the image's by a fraction of a voxel")
    offset = np.rint(offset).astype(int)
    # target axis t takes source axis s with sign perm[t, s]
    source_axis_for = [int(np.flatnonzero(perm[t])[0]) for t in range(3)]
    array = np.transpose(source.array, source_axis_for)
    for t in range(3):
        s = source_axis_for[t]
        if perm[t, s] < 0:
            array = np.flip(array, axis=t)
    # After flipping, index 0 of target axis t corresponds to the extreme of the source axis.
    lo = np.array(
        [
            offset[t] - (source.shape[source_axis_for[t]] - 1) if perm[t, source_axis_for[t]] < 0 else offset[t]
            for t in range(3)
        ]
    )
    if not (np.all(lo == 0) and array.shape == target.shape):
        raise InputError(
            f"{what} grid differs from the image's: shape {source.shape} does not cover the image's {target.shape}"
        )
    return target.with_array(np.ascontiguousarray(array), name=source.name)
