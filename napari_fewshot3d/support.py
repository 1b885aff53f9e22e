"""The support set: what the user painted, read as per-class painted slices.

For each class, the slices (along the chosen axis) that contain it are its painted slices; on
such a slice every voxel not of that class is a negative for it. Slices the user declares as
painted but empty ("this slice contains nothing") are negatives for every class.

With a reserved ``background`` label, a slice may be partial instead (scribbles, see :mod:`.scribbles`): a slice that
holds the background label says only what its strokes say, and the engine completes it before any backend learns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .masks import take_slice
from .progress import Task
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
    #: The label value that marks "certainly no class" in strokes, and the slices that hold it (partial slices).
    background: int | None = None
    partial_slices: tuple[int, ...] = ()
    #: Voxels whose label is a guess, not painting: the outlines of completed scribbled slices (see ``completed``).
    #: Backends that learn from sampled voxels leave them out; None when every label is the user's.
    uncertain: np.ndarray | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_labels(
        cls,
        labels: Volume,
        axis: str | int = "axial",
        class_names: Mapping[int, str] | None = None,
        empty_slices: Iterable[int] = (),
        background: int | None = None,
    ) -> SupportSet:
        """Build the support set of a labels volume (already on the image's grid); ``background``, if given, is the
        label value of background strokes, and every slice holding it is partial."""
        array_axis = labels.slicing_axis(axis)
        if background is not None and int(background) <= 0:
            raise InputError(f"the background label must be a positive label value, got {background}")
        names = dict(labels.metadata.get("class_names", {}))
        names.update({int(k): str(v) for k, v in (class_names or {}).items()})
        n_slices = labels.shape[array_axis]
        empty = tuple(sorted({int(s) for s in empty_slices}))
        for s in empty:
            if not 0 <= s < n_slices:
                raise InputError(f"empty slice {s} is outside the volume (0..{n_slices - 1} along that axis)")
        other_axes = tuple(a for a in range(3) if a != array_axis)
        partial: tuple[int, ...] = ()
        if background is not None:
            background = int(background)
            present = np.any(labels.array == background, axis=other_axes)
            partial = tuple(int(s) for s in np.flatnonzero(present))
            clash = set(partial) & set(empty)
            if clash:
                raise InputError(f"slice {min(clash)} is declared empty but holds background strokes")
        classes = []
        for value in np.unique(labels.array):
            value = int(value)
            if value == 0 or value == background:
                continue
            present = np.any(labels.array == value, axis=other_axes)
            slices = tuple(int(s) for s in np.flatnonzero(present))
            clash = set(slices) & set(empty)
            if clash:
                raise InputError(f"slice {min(clash)} is declared empty but contains class {value}")
            classes.append(ClassSupport(value, names.get(value, f"class_{value}"), slices))
        if not classes:
            if partial:
                raise InputError("only background strokes: paint a stroke inside each structure too")
            raise InputError("no painted slice: paint a few slices of each structure (all label voxels are 0)")
        colors = dict(labels.metadata.get("class_colors", {}))
        return cls(labels, array_axis, classes, empty, colors, background if partial else None, partial)

    def completed(self, image: Volume, task: Task) -> SupportSet:
        """This support with every partial slice completed from its strokes (what backends learn from); itself when
        every slice is complete."""
        if not self.partial_slices:
            return self
        from .scribbles import complete, uncertain_outlines

        labels = complete(image, self.labels.array, self.axis, self.partial_slices, self.background, task)
        uncertain = uncertain_outlines(labels, self.labels.array, self.axis, self.partial_slices)
        classes, empty = list(self.classes), self.empty_slices
        return SupportSet(
            self.labels.with_array(labels), self.axis, classes, empty, self.class_colors, uncertain=uncertain
        )

    @property
    def values(self) -> list[int]:
        return [c.value for c in self.classes]

    @property
    def class_names(self) -> dict[int, str]:
        return {c.value: c.name for c in self.classes}

    def painted_slices(self) -> tuple[int, ...]:
        """Every slice painted for any class, plus the declared empty ones (a slice of background strokes alone is
        neither: it says nowhere where a class is)."""
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


#: A class of this name (any case) in a support file or a Slicer segmentation is the background of scribbles.
BACKGROUND_NAME = "background"


def background_in(class_names: Mapping[int, str]) -> int | None:
    """The label value of a class named "background", if the painting names one (its strokes mark no class)."""
    return next((int(v) for v, name in class_names.items() if str(name).strip().lower() == BACKGROUND_NAME), None)


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
