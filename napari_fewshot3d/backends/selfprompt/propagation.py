"""Continuing a structure painted on one slice where the head's coarse mask loses it: SAM's decoder prompted with
the box of the structure's mask on the slice before, the way SAM-style models carry a mask through a volume.

From one painted slice the head has seen the structure once. A few slices away its coarse mask (64 x 64 cells of
about 5 mm) no longer continues a thin structure, or the piece that does looks like the surroundings as a whole and
the intensity check vetoes it: tracking stops there. The CT pancreas painted on its middle slice was tracked over 4
of its 19 slices. SAM, given the box of the neighbouring slice's mask, outlines the structure at full resolution
(there: Dice 0.6-0.9 per slice down to its lower tip, where it stops by itself). SAM alone would not stop, though:
past the pancreas's upper end it kept outlining whatever lay in the box. So its mask is used only where the head's
tracking found nothing, and only if the head agrees with most of it, it continues the neighbouring mask, it grows
little, and its intensities look like the painted structure's. It is shown as SAM drew it.

Measured (selfprompt-sam alone, k=1, the bench's 12 structures, whole-volume Dice): whole slices 0.805 -> 0.841,
strokes 0.767 -> 0.799; CT pancreas 0.267 -> 0.520, CT stomach 0.753 -> 0.850, CT left kidney 0.815 -> 0.895; no
structure lost more than 0.015 (CT liver from strokes 0.845 -> 0.830). Used instead of the coarse mask wherever SAM's
mask passed the same checks, it lost the CT spleen (0.894 -> 0.725) and stomach (0.753 -> 0.454): a box around a
large organ's neighbouring outline holds other organs too. Only classes painted on one slice use it, on the painted
image: with more painted slices tracking runs between them, and on other scans the seeds are found, not painted
(neither measured with it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .embedder import SliceEmbedder

#: At least this fraction of SAM's mask must lie inside the head's coarse mask (p > 0.5) of the slice.
IN_COARSE = 0.4
#: At least this fraction of SAM's mask must overlap the structure's mask on the neighbouring slice.
OVERLAP = 0.5
#: SAM's mask may be at most this many times the neighbouring slice's mask.
GROWTH = 1.5


class BoxPropagation:
    """Where tracking lost a structure on a slice, SAM's mask prompted with the box of the neighbouring slice's mask,
    if it passes the checks above; ``slices`` are those it continued, to be shown as SAM drew them."""

    def __init__(self, embedder: SliceEmbedder, looks_right: Callable[[int, np.ndarray], bool]) -> None:
        self.embedder, self.looks_right = embedder, looks_right
        self.slices: set[int] = set()

    def __call__(self, index: int, reference: np.ndarray, coarse: np.ndarray, reach: np.ndarray) -> np.ndarray | None:
        """The structure on slice ``index`` continued from ``reference`` (its mask on the slice before), kept
        within ``reach`` (how far tracking lets it move); None where SAM's mask fails a check (``coarse``: the head's
        coarse mask of the slice)."""
        proposal = self.embedder.refine(index, reference)
        if proposal is None or not proposal.any():
            return None
        area = int(proposal.sum())
        agrees = (proposal & coarse).sum() >= IN_COARSE * area
        continues = (proposal & reference).sum() >= OVERLAP * area
        if not (agrees and continues and area <= GROWTH * reference.sum() and self.looks_right(index, proposal)):
            return None
        self.slices.add(index)
        return proposal & reach
