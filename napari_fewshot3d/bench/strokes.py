"""Scribbles drawn from a reference, for the bench's scribble mode: what a user of a pixel classifier paints.

On each painted slice, every structure gets one thinned stroke along its middle (the skeleton of the structure
shrunk by a few millimetres) and the surroundings get four short arcs on a ring a centimetre outside it, half of
the ring in all: the rest of the slice is left unpainted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from ..masks import take_slice
from ..support import SupportSet

#: How far inside the outline the inner stroke runs, and how far outside the surrounding arcs lie.
INNER_MM, RING_MM = 3.0, 10.0
#: The surrounding ring is kept on ARCS arcs that together cover this fraction of it.
ARCS, RING_FRACTION = 4, 0.5


def inner_stroke(mask: np.ndarray, pixel_mm: float) -> np.ndarray:
    """A one-pixel stroke along the middle of a 2D mask (its skeleton after shrinking it by ``INNER_MM``)."""
    from skimage.morphology import skeletonize

    shrunk = ndi.binary_erosion(mask, iterations=max(int(round(INNER_MM / pixel_mm)), 1))
    return skeletonize(shrunk if shrunk.any() else mask)


def surrounding_arcs(mask: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Arcs of the ring ``RING_MM`` outside a 2D mask, ``ARCS`` of them evenly around its centre."""
    grown = ndi.binary_dilation(mask, iterations=max(int(round(RING_MM / pixel_mm)), 1))
    ring = grown & ~ndi.binary_erosion(grown)
    rows, cols = np.nonzero(ring)
    if rows.size == 0:
        return ring
    cy, cx = ndi.center_of_mass(mask)
    angle = (np.arctan2(rows - cy, cols - cx) + np.pi) / (2 * np.pi)  # 0..1 around the centre
    kept = (angle * ARCS) % 1.0 < RING_FRACTION
    arcs = np.zeros_like(ring)
    arcs[rows[kept], cols[kept]] = True
    return arcs


def scribble_slices(
    support: np.ndarray,
    values: Sequence[int],
    axis: int,
    pixel_mm: float,
    background: int,
) -> np.ndarray:
    """Strokes in place of each painted slice of ``support`` (complete slices of ``values``): inner strokes of
    each class, and ``background`` on arcs around each that touch no painted structure."""
    strokes = np.zeros_like(support)
    other_axes = tuple(a for a in range(3) if a != axis)
    for index in np.flatnonzero(np.any(np.isin(support, values), axis=other_axes)):
        painted = take_slice(support, axis, index)
        out = take_slice(strokes, axis, index)
        for value in values:
            mask = painted == value
            if mask.any():
                out[surrounding_arcs(mask, pixel_mm) & ~np.isin(painted, values)] = background
        for value in values:
            mask = painted == value
            if mask.any():
                out[inner_stroke(mask, pixel_mm)] = value
    return strokes


def scribble_support(support: SupportSet) -> SupportSet:
    """The same painted slices as strokes: what a user of scribbles paints where ``support`` has complete slices.
    The background label is the first value above every class."""
    labels = support.labels
    pixel_mm = float(np.mean([labels.spacing[a] for a in range(3) if a != support.axis]))
    background = max(support.values) + 1
    strokes = scribble_slices(labels.array, support.values, support.axis, pixel_mm, background)
    return SupportSet.from_labels(
        labels.with_array(strokes.astype(np.min_scalar_type(background)), name="scribbles"),
        support.axis,
        support.class_names,
        background=background,
    )
