"""Choices made per class from the painting itself: each painted slice held out in turn is predicted from the
others, and whichever variant reproduces it best (SAM refinement or the head's outline; which shape fusion) wins."""

from __future__ import annotations

import numpy as np

from ...masks import dice
from ...progress import Task
from ...support import SupportSet
from .embedder import SliceEmbedder
from .head import CellHead, fit_head
from .outline import tight, within
from .shape_prior import FUSIONS, choose_fusion, fuse, held_out_shape, neighbours
from .tracking import continue_structure, track


def held_out_choices(
    embedder: SliceEmbedder,
    support: SupportSet,
    samples: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]],
    value: int,
    embeddings: dict[int, np.ndarray],
    growth: float,
    spacing: tuple[float, ...],
    head: CellHead | None = None,
    max_folds: int = 3,
    task: Task | None = None,
    stride: int = 1,
) -> tuple[bool, str]:
    """Per class, from the painting itself: does SAM's refinement beat the head's own outline, and should the
    outlines interpolated between painted slices cut down or widen the result (see shape_prior)?

    With three or more painted slices, up to ``max_folds`` interior ones are held out one at a time: the
    head is fitted without it (starting from ``head``, the fit on all of them), the structure is tracked
    onto it from its two painted neighbours, and each variant is scored against the painting. The ends
    (each continued from its own painting, as they have one painted neighbour) decide only when the interior
    cannot (two painted slices, or a tie). With a single slice, the decoder is judged on the painted
    outline's own box and there is nothing to interpolate.
    """
    painted = list(support.get(value).slices)
    truths = {s: support.slice_of(support.labels.array, s) == value for s in painted}
    if len(painted) == 1:
        refined = embedder.refine(painted[0], truths[painted[0]])
        return refined is not None and dice(refined, truths[painted[0]]) >= 0.85, "none"
    interior = _evenly(painted[1:-1], max_folds)
    fold_heads: dict[int, CellHead] = {}  # a tie revisits interior slices among the ends: fit each fold once

    def variants(held_out: int, tracked: bool) -> tuple[np.ndarray, np.ndarray]:
        """(coarse outline, refined) on a held-out slice: tracked from its painted neighbours as segmenting
        would, or (ends, which have one neighbour) continued from its own painting."""
        if held_out not in fold_heads:
            train = [sample for s, sample in samples[value].items() if s != held_out]
            fold_heads[held_out] = fit_head({value: train}, start=head)
        probability = embedder.cells_to_slice(fold_heads[held_out].predict(embeddings[held_out])[0])
        if tracked:
            coarse = tracked_between(embedder, fold_heads[held_out], truths, held_out, growth, task, stride)
        else:
            coarse = continue_structure(probability > 0.5, truths[held_out], growth)
        refined = embedder.refine(held_out, coarse) if coarse.any() else None
        return tight(coarse, probability), coarse if refined is None else refined & within(coarse, embedder)

    # Interior slices first (most unpainted slices lie between painted ones); the ends decide only a tie.
    inner = {s: variants(s, tracked=True) for s in interior}
    refine = _refinement_wins(inner, truths)
    if refine is None:
        refine = bool(_refinement_wins({s: variants(s, tracked=False) for s in _evenly(painted, max_folds)}, truths))
    scores: dict[str, list[float]] = {name: [] for name in FUSIONS}
    for held_out in interior:
        # Both sides from the same two neighbouring painted slices, across the same gap: the shape
        # interpolated between them, and the mask tracked from them slice by slice, as segmenting would.
        shape = held_out_shape(truths, held_out, spacing)
        ours = inner[held_out][1 if refine else 0]
        for name in FUSIONS:
            scores[name].append(dice(fuse(ours, shape, name), truths[held_out]))
    return refine, choose_fusion(scores)


def _refinement_wins(variants: dict[int, tuple[np.ndarray, np.ndarray]], truths: dict[int, np.ndarray]) -> bool | None:
    """Whether refined masks reproduce the held-out painting better than coarse outlines (None: no difference)."""
    coarse = sum(dice(c, truths[s]) for s, (c, _) in variants.items())
    refined = sum(dice(r, truths[s]) for s, (_, r) in variants.items())
    return None if abs(refined - coarse) < 1e-6 else refined > coarse


def tracked_between(
    embedder: SliceEmbedder,
    head: CellHead,
    truths: dict[int, np.ndarray],
    held_out: int,
    growth: float,
    task: Task | None,
    stride: int = 1,
) -> np.ndarray:
    """The mask tracking gives on ``held_out`` from the painted slices on either side of it, by ``head`` (a
    ``stride`` at a time, as segmenting would, the held-out slice always among those tracked onto)."""
    lower, upper = neighbours(truths, held_out)

    def coarse(indices: list[int]) -> dict[int, np.ndarray]:
        embeddings = embedder.get(indices, Task(None, task.cancel_token if task else None))
        return {i: embedder.cells_to_slice(head.predict(embeddings[i])[0]) > 0.5 for i in indices}

    outside = tuple(s for s in (lower - 1, upper + 1) if 0 <= s < embedder.n_slices)
    painted = {lower: truths[lower], upper: truths[upper]}
    masks = track(embedder.n_slices, painted, coarse, growth, outside, stride=stride, visit=(held_out,))
    return masks.get(held_out, np.zeros_like(truths[held_out]))


def _evenly(items: list[int], count: int) -> list[int]:
    """Up to ``count`` of ``items``, spread evenly, ends included."""
    if not items:
        return []
    return [items[i] for i in np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int)]
