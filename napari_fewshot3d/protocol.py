"""The painting protocol shared by the demo and the benchmark (GUIDE §5).

With k painted slices of a structure whose extent along the axis is [lo, hi], slice i is
round(lo + (i + 0.5) * (hi - lo + 1) / k - 0.5): evenly spread, each in the middle of its share.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .errors import InputError


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
    support = np.zeros_like(reference)
    chosen: set[int] = set()
    values = [int(v) for v in values]
    for value in values:
        chosen.update(protocol_slices(reference == value, axis, k))
    where: list[slice | int] = [slice(None)] * reference.ndim
    for index in sorted(chosen):
        where[axis] = index
        ref_slice = reference[tuple(where)]
        out_slice = support[tuple(where)]
        for value in values:
            out_slice[ref_slice == value] = value
    return support


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    prediction, reference = prediction.astype(bool), reference.astype(bool)
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(prediction, reference).sum()) / total
