"""The head's training cells: from the painted slices, and — for a second look on the painted volume — from the
slices the first pass tracked.

A head fitted on one or a few painted slices knows the structure as it looks there; a few slices away its
appearance drifts (the liver's left lobe, a kidney's pole) and the coarse mask shrinks slice by slice until
tracking loses it. Refitting the head with the first pass's own masks as extra examples teaches it those
appearances, and tracking again from the same painted seeds reaches more of the structure. Pseudo-labels are
biased toward what the first pass found, so only cells inside a tracked mask are positives and only cells far from
it are negatives: the missed rim, where the first pass was most likely wrong, teaches nothing. The second pass can
only add to the first (the union is shown), so a head that drifted cannot take away what the painting supported.
Only classes painted on one slice get it: with more painted slices the head has already seen the structure change.
Measured offline on the bench's 12 structures (whole-volume Dice of the hybrid's combination): at k=1 0.798 ->
0.818 (CT liver 0.871 -> 0.946, CT right kidney 0.802 -> 0.920); at k=3 0.919 -> 0.917 (the bladder's and an MR
kidney's ends overgrown), so not there. The second pass alone, without the union, lost whole structures at k=1
(CT left kidney 0.33, MR spleen 0.31).
"""

from __future__ import annotations

import numpy as np

from ...support import SupportSet
from .embedder import SliceEmbedder
from .head import CellHead, cell_samples, fit_head
from .tracking import grown

#: Cells of a tracked (not painted) slice farther than this (mm) from its mask are the second look's negatives.
NEGATIVE_DISTANCE_MM = 15.0
#: At most this many tracked slices per class teach the second look (evenly spread): the fit's cost stays bounded.
MAX_TRACKED_SLICES = 24

Samples = dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]


def slice_samples(embedder: SliceEmbedder, support: SupportSet, embeddings: dict[int, np.ndarray]) -> Samples:
    """Training cells per class and per painted slice: {class value: {slice: (features, targets)}}."""
    samples: Samples = {}
    for cls in support.classes:
        samples[cls.value] = {}
        for index in support.negative_slices(cls.value):
            coverage = embedder.to_cells(support.slice_of(support.labels.array, index) == cls.value)
            samples[cls.value][index] = cell_samples(embeddings[index], coverage, embedder.valid_cells)
    return samples


def tracked_samples(
    embedder: SliceEmbedder, masks: dict[int, np.ndarray], embeddings: dict[int, np.ndarray]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """One class's training cells from its tracked masks ({slice: 2D mask}): positives inside, negatives far away."""
    pixel_mm = float(np.mean(embedder.letterbox.spacing))
    out = {}
    for index, mask in masks.items():
        coverage = embedder.to_cells(mask)
        reach = embedder.to_cells(grown(mask, NEGATIVE_DISTANCE_MM / pixel_mm))
        keep = embedder.valid_cells & ((coverage >= 0.5) | (reach == 0))
        out[index] = (embeddings[index][:, keep].T.astype(np.float32), (coverage >= 0.5)[keep].astype(np.int8))
    return out


def second_look_head(
    head: CellHead, embedder: SliceEmbedder, support: SupportSet, tracked: dict[int, dict[int, np.ndarray]]
) -> CellHead:
    """``head`` refitted on the painted slices plus up to MAX_TRACKED_SLICES of each class's tracked masks
    (``tracked``: class value -> {slice: mask}, painted slices left out)."""
    chosen = {value: _evenly(sorted(s for s, m in masks.items() if m.any())) for value, masks in tracked.items()}
    taught = {s for c in support.classes for s in support.negative_slices(c.value)}
    needed = sorted(taught | {s for slices in chosen.values() for s in slices})
    embeddings = embedder.get(needed)
    samples = slice_samples(embedder, support, embeddings)
    for value, slices in chosen.items():
        extra = tracked_samples(embedder, {s: tracked[value][s] for s in slices}, embeddings)
        samples[value] |= extra
    return fit_head({v: list(s.values()) for v, s in samples.items()}, start=head)


def _evenly(items: list[int], count: int = MAX_TRACKED_SLICES) -> list[int]:
    if len(items) <= count:
        return items
    return [items[round(i)] for i in np.linspace(0, len(items) - 1, count)]
