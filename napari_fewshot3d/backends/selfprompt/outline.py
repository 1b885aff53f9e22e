"""How far an outline may move between slices and how tight it is drawn: the self-prompt backend's geometry rules,
in millimetres, so that they mean the same on every scan."""

from __future__ import annotations

import numpy as np

from ...volume import Volume
from .embedder import SliceEmbedder
from .tracking import grown

#: How far (mm) a structure's outline may move outward from one slice to the next while tracking.
GROWTH_MM_PER_SLICE_THICKNESS = 3.0
#: Tracking steps over slices thinner than this (mm): the structures it follows change over several mm, and
#: the slices between are filled from the masks on either side. 3 mm is the grid every rule here was tuned on.
TRACK_STEP_MM = 3.0
#: Refined masks stay within this distance (mm) of the coarse mask: SAM may sharpen, not wander.
REFINE_MARGIN_MM = 6.0
#: The head's probability above which a cell-level outline is kept where SAM does not refine (see tight()).
OUTLINE_THRESHOLD = 0.8


def growth_px(volume: Volume, axis: int, embedder: SliceEmbedder) -> float:
    """In-plane pixels a structure's outline may move outward between neighbouring slices."""
    return GROWTH_MM_PER_SLICE_THICKNESS * float(volume.spacing[axis]) / float(np.mean(embedder.letterbox.spacing))


def track_stride(volume: Volume, axis: int, step_mm: float = TRACK_STEP_MM) -> int:
    """Every how many slices tracking encodes one (1: every slice; ``step_mm`` 0 forces that)."""
    if step_mm <= 0:
        return 1
    return max(1, int(step_mm / float(volume.spacing[axis]) + 1e-6))


def in_plane_spacing(volume: Volume, axis: int) -> tuple[float, ...]:
    """Voxel size (mm) of a slice along ``axis``, in the slice's array order."""
    return tuple(float(volume.spacing[a]) for a in range(3) if a != axis)


def tight(mask: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """``mask`` cut to where the head (its probability on the slice) is confident: a 0.5 contour of cell
    probabilities runs through the structure's partly covered border cells, a band ~half a cell too wide."""
    return mask & (probability > OUTLINE_THRESHOLD)


def within(mask: np.ndarray, embedder: SliceEmbedder) -> np.ndarray:
    """The coarse mask grown by the refinement margin, in slice voxels."""
    spacing = float(np.mean(embedder.letterbox.spacing))
    return grown(mask, REFINE_MARGIN_MM / spacing)
