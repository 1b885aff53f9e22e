"""Small array rules every part shares: one slice of a volume along an axis, and the Dice overlap of two masks."""

from __future__ import annotations

import numpy as np


def slice_index(axis: int, index: int, ndim: int = 3) -> tuple[slice | int, ...]:
    """The index tuple that takes slice ``index`` along ``axis`` (use it to read or to write in place)."""
    where: list[slice | int] = [slice(None)] * ndim
    where[axis] = index
    return tuple(where)


def take_slice(array: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Slice ``index`` of ``array`` along ``axis``, as a view: writes to it land in ``array``."""
    return array[slice_index(axis, index, array.ndim)]


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    prediction, reference = prediction.astype(bool), reference.astype(bool)
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(prediction, reference).sum()) / total
