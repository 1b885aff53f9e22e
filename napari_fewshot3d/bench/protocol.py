"""The painting protocol shared by the demo and the benchmark (GUIDE §5).

With k painted slices of a structure whose extent along the axis is [lo, hi], slice i is
round(lo + (i + 0.5) * (hi - lo + 1) / k - 0.5): evenly spread, each in the middle of its share.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..masks import take_slice
from ..support import SupportSet, merge_reviewed
from ..volume import Volume


def protocol_slices(mask: np.ndarray, axis: int, k: int) -> list[int]:
    """The k slice indices a user following the protocol paints for a binary ``mask``."""
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    other_axes = tuple(a for a in range(mask.ndim) if a != axis)
    present = np.flatnonzero(np.any(mask, axis=other_axes))
    if present.size == 0:
        raise InputError("the structure is empty: no slice to paint")
    lo, hi = int(present[0]), int(present[-1])
    slices = [int(round(lo + (i + 0.5) * (hi - lo + 1) / k - 0.5)) for i in range(k)]
    return sorted(set(slices))


def random_slices(mask: np.ndarray, axis: int, k: int, seed: int) -> list[int]:
    """k distinct slices drawn at random among those that contain the structure."""
    other_axes = tuple(a for a in range(mask.ndim) if a != axis)
    present = np.flatnonzero(np.any(mask, axis=other_axes))
    if present.size == 0:
        raise InputError("the structure is empty: no slice to paint")
    rng = np.random.default_rng(seed)
    return sorted(int(s) for s in rng.choice(present, size=min(k, present.size), replace=False))


def paint_slices(reference: np.ndarray, values: Iterable[int], axis: int, k: int) -> np.ndarray:
    """A support labels array: for each class value, the reference on that class's k protocol slices.

    Every class is painted on its own slices; on a slice painted for any class, each class present
    in the reference there is painted too (a user paints what is on the slice they chose), so that no
    painted slice holds a half-truth.
    """
    chosen: set[int] = set()
    values = [int(v) for v in values]
    for value in values:
        chosen.update(protocol_slices(reference == value, axis, k))
    return paint_on_slices(reference, values, axis, sorted(chosen))


def paint_on_slices(reference: np.ndarray, values: Sequence[int], axis: int, slices: Sequence[int]) -> np.ndarray:
    """The reference of ``values`` on the given slices only, every other voxel 0."""
    support = np.zeros_like(reference)
    for index in sorted(set(slices)):
        ref_slice, out_slice = take_slice(reference, axis, index), take_slice(support, axis, index)
        for value in values:
            out_slice[ref_slice == value] = value
    return support


def one_correction(support: SupportSet, prediction: np.ndarray, reference: Volume) -> SupportSet | None:
    """The support plus the one unpainted slice where the prediction is most wrong, painted from the reference:
    what a user does after looking at a result. None when every unpainted slice is already right."""
    values = support.values
    wrong = np.isin(prediction, values) | np.isin(reference.array, values)
    wrong &= prediction != np.where(np.isin(reference.array, values), reference.array, 0)
    errors = wrong.sum(axis=tuple(a for a in range(3) if a != support.axis))
    errors[list(support.painted_slices())] = 0
    if errors.max() == 0:
        return None
    worst = int(np.argmax(errors))
    truth = np.where(np.isin(reference.array, values), reference.array, 0)
    labels, empty = merge_reviewed(support.labels, truth, [worst], support.axis)
    return SupportSet.from_labels(
        labels, support.axis, support.class_names, [*support.empty_slices, *empty], support.background
    )
