"""The support set: what the user painted, read as per-class painted slices.

For each class, the slices (along the chosen axis) that contain it are its painted slices; on
such a slice every voxel not of that class is a negative for it. Slices the user declares as
painted but empty ("this slice contains nothing") are negatives for every class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .masks import take_slice
from .volume import Volume


@dataclass(frozen=True)
class ClassSupport:
    value: int
    name: str
    slices: tuple[int, ...]


@dataclass
class SupportSet:
    """Painted labels on an image's grid, with the slices that count as painted for each class."""

    labels: Volume
    axis: int
    classes: list[ClassSupport]
    empty_slices: tuple[int, ...] = ()
    class_colors: dict[int, list[float]] = field(default_factory=dict)

    @classmethod
    def from_labels(
        cls,
        labels: Volume,
        axis: str | int = "axial",
        class_names: Mapping[int, str] | None = None,
        empty_slices: Iterable[int] = (),
    ) -> SupportSet:
        """Build the support set of a labels volume (already on the image's grid)."""
        array_axis = labels.slicing_axis(axis)
        names = dict(labels.metadata.get("class_names", {}))
        names.update({int(k): str(v) for k, v in (class_names or {}).items()})
        n_slices = labels.shape[array_axis]
        empty = tuple(sorted({int(s) for s in empty_slices}))
        for s in empty:
            if not 0 <= s < n_slices:
                raise InputError(f"empty slice {s} is outside the volume (0..{n_slices - 1} along that axis)")
        other_axes = tuple(a for a in range(3) if a != array_axis)
        classes = []
        for value in np.unique(labels.array):
            value = int(value)
            if value == 0:
                continue
            present = np.any(labels.array == value, axis=other_axes)
            slices = tuple(int(s) for s in np.flatnonzero(present))
            clash = set(slices) & set(empty)
            if clash:
                raise InputError(f"slice {min(clash)} is declared empty but contains class {value}")
            classes.append(ClassSupport(value, names.get(value, f"class_{value}"), slices))
        if not classes:
            raise InputError("no painted slice: paint a few slices of each structure (all label voxels are 0)")
        return cls(labels, array_axis, classes, empty, dict(labels.metadata.get("class_colors", {})))

    @property
    def values(self) -> list[int]:
        return [c.value for c in self.classes]

    @property
    def class_names(self) -> dict[int, str]:
        return {c.value: c.name for c in self.classes}

    def painted_slices(self) -> tuple[int, ...]:
        """Every slice painted for any class, plus the declared empty ones."""
        return tuple(sorted({s for c in self.classes for s in c.slices} | set(self.empty_slices)))

    def negative_slices(self, value: int) -> tuple[int, ...]:
        """Slices on which every voxel not of class ``value`` is known background for it."""
        cls_support = self.get(value)
        return tuple(sorted(set(cls_support.slices) | set(self.empty_slices)))

    def get(self, value: int) -> ClassSupport:
        for c in self.classes:
            if c.value == value:
                return c
        raise KeyError(value)

    def slice_of(self, array: np.ndarray, index: int) -> np.ndarray:
        """One slice of an array on this grid along the support axis (a view: writes go through)."""
        return take_slice(array, self.axis, index)

    def require_slices_per_class(self, minimum: int, backend: str) -> None:
        """Refuse classes with too few painted slices for a backend, naming them."""
        thin = [c for c in self.classes if len(c.slices) < minimum]
        if thin:
            c = thin[0]
            raise InputError(
                f"class {c.name} ({c.value}) is painted on {len(c.slices)} slice(s); "
                f"backend {backend} needs at least {minimum} per class"
            )


# ----------------------------------------------------------------------------- corrections as support
# Every front end's "Re-adapt" does this: slices the user corrected in a prediction become support.


def changed_slices(before: np.ndarray, after: np.ndarray, axis: int) -> set[int]:
    """Indices along ``axis`` of the slices where two label arrays differ."""
    if before.shape != after.shape:
        raise InputError("the prediction layer changed shape; run 'Adapt and segment' again")
    other_axes = tuple(a for a in range(before.ndim) if a != axis)
    return {int(s) for s in np.flatnonzero(np.any(before != after, axis=other_axes))}


def merge_reviewed(
    support: Volume, prediction: np.ndarray, reviewed: Iterable[int], axis: int
) -> tuple[Volume, list[int]]:
    """The support labels with each reviewed slice taken from the (corrected) prediction.

    Returns the merged labels and the reviewed slices that hold no class (known empty for every class).
    The support volume itself is never changed.
    """
    merged = support.array.copy()
    empty = []
    for index in sorted(set(reviewed)):
        take_slice(merged, axis, index)[...] = take_slice(prediction, axis, index)
        if not np.any(take_slice(merged, axis, index)):
            empty.append(index)
    return support.with_array(merged), empty
