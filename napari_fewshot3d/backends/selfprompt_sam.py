"""Self-prompting SAM: a light head on frozen SAM embeddings finds the structure on every slice,
its boxes prompt SAM's mask decoder for the refined outline.

adapt: encode the painted slices, fit the per-class head, and decide per class — from the
painted slices themselves, held out one at a time — whether SAM's refinement beats the coarse
mask. segment: track each class outward from its painted slices (encoding only the slices the
structure reaches), refine where it helps, resolve overlaps by the head's confidence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..cache import EmbeddingCache
from ..head import CellHead, cell_samples, fit_head
from ..intensity_prior import IntensityPrior, surroundings
from ..progress import Task
from ..protocol import dice
from ..shape_prior import FUSIONS, choose_fusion, fuse, held_out_shape, interpolated_slices, neighbours
from ..slice_embedder import SliceEmbedder
from ..support import SupportSet
from ..tracking import continue_structure, disk, track
from ..volume import Volume
from .base import AdaptedModel, Backend

_MODELS: dict[tuple[str, str, str], Any] = {}
_CACHE = EmbeddingCache()

#: How far (mm) a structure's outline may move outward from one slice to the next while tracking.
GROWTH_MM_PER_SLICE_THICKNESS = 3.0
#: Width (mm) of the ring around a painted structure whose intensities stand for "not the structure".
SURROUNDINGS_MM = 15.0
#: Refined masks stay within this distance (mm) of the coarse mask: SAM may sharpen, not wander.
REFINE_MARGIN_MM = 6.0
#: The head's probability above which a cell-level outline is kept where SAM does not refine (see tight()).
OUTLINE_THRESHOLD = 0.8


def load_model(device: str, checkpoint: str | None = None, model_type: str = "vit_b"):
    """The SAM model for a device and the precision $FEWSHOT3D_PRECISION asks for (auto when unset), loaded once
    per process (39 MB of weights for LiteMedSAM)."""
    from ..models.sam import load_litemedsam, load_sam_checkpoint, precision_from_env

    precision = precision_from_env()
    key = (checkpoint or "litemedsam", device, precision)
    if key not in _MODELS:
        _MODELS[key] = (
            load_sam_checkpoint(checkpoint, model_type, device, precision)
            if checkpoint
            else load_litemedsam(device, precision)
        )
    return _MODELS[key]


class SelfPromptSamBackend(Backend):
    name = "selfprompt-sam"
    description = "LiteMedSAM embeddings + per-class head, refined by SAM's decoder where it helps"
    min_slices_per_class = 1
    can_save = True

    def __init__(self, checkpoint: str | None = None, model_type: str = "vit_b", window: dict | None = None) -> None:
        self.checkpoint = checkpoint
        self.model_type = model_type
        self.window = dict(window or {})

    def forget_embeddings(self) -> None:
        _CACHE.clear_memory()

    def embedder(self, volume: Volume, axis: int, device: str) -> SliceEmbedder:
        model = load_model(device, self.checkpoint, self.model_type)
        return SliceEmbedder(model, volume, axis, _CACHE, self.window, batch_size=8 if device == "cuda" else 1)

    def embed(self, volume: Volume, device: str, task: Task, axis: int) -> None:
        embedder = self.embedder(volume, axis, device)
        embedder.get(list(range(embedder.n_slices)), task)

    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        embedder = self.embedder(volume, support.axis, device)
        painted = list(support.painted_slices())
        embeddings = embedder.get(painted, task.sub(0.0, 0.8))
        task.report(0.85, "fitting the head")
        samples = slice_samples(embedder, support, embeddings)
        head = fit_head({v: list(s.values()) for v, s in samples.items()})
        priors = {c.value: intensity_prior(embedder, support, c.value) for c in support.classes}
        task.report(0.9, "choosing refinement per class")
        growth = growth_px(volume, support.axis, embedder)
        spacing = in_plane_spacing(volume, support.axis)
        choices = {
            c.value: held_out_choices(embedder, support, samples, c.value, embeddings, growth, spacing, head, task=task)
            for c in support.classes
        }
        task.report(1.0, "adapted")
        return SelfPromptModel(
            head,
            {value: refine for value, (refine, _) in choices.items()},
            priors,
            support.axis,
            support.class_names,
            self.window,
            self.checkpoint,
            self.model_type,
            support,
            {value: fusion for value, (_, fusion) in choices.items()},
        )

    def from_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> AdaptedModel:
        head = CellHead.from_arrays(arrays)
        refine = {int(k): bool(v) for k, v in meta["refine"].items()}
        priors = {v: IntensityPrior(arrays[f"prior_{v}"]) for v in head.values}
        return SelfPromptModel(
            head,
            refine,
            priors,
            meta["axis"],
            {},
            meta.get("window", {}),
            meta.get("checkpoint"),
            meta.get("model_type", "vit_b"),
            fusion={int(k): str(v) for k, v in meta.get("fusion", {}).items()},
        )


def slice_samples(
    embedder: SliceEmbedder, support: SupportSet, embeddings: dict[int, np.ndarray]
) -> dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Training cells per class and per painted slice: {class value: {slice: (features, targets)}}."""
    samples: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for cls in support.classes:
        samples[cls.value] = {}
        for index in support.negative_slices(cls.value):
            coverage = embedder.to_cells(support.slice_of(support.labels.array, index) == cls.value)
            samples[cls.value][index] = cell_samples(embeddings[index], coverage, embedder.valid_cells)
    return samples


def growth_px(volume: Volume, axis: int, embedder: SliceEmbedder) -> float:
    """In-plane pixels a structure's outline may move outward between neighbouring slices."""
    return GROWTH_MM_PER_SLICE_THICKNESS * float(volume.spacing[axis]) / float(np.mean(embedder.letterbox.spacing))


def intensity_prior(embedder: SliceEmbedder, support: SupportSet, value: int) -> IntensityPrior:
    """Intensities of the painted structure against those of the ring around it, on its painted slices."""
    radius = SURROUNDINGS_MM / float(np.mean(embedder.letterbox.spacing))
    inside, around = [], []
    for index in support.get(value).slices:
        mask = support.slice_of(support.labels.array, index) == value
        image = embedder.image_slice(index)
        inside.append(image[mask])
        around.append(image[surroundings(mask, radius)])
    return IntensityPrior.fit(np.concatenate(inside), np.concatenate(around))


def in_plane_spacing(volume: Volume, axis: int) -> tuple[float, ...]:
    """Voxel size (mm) of a slice along ``axis``, in the slice's array order."""
    return tuple(float(volume.spacing[a]) for a in range(3) if a != axis)


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
            coarse = tracked_between(embedder, fold_heads[held_out], truths, held_out, growth, task)
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
) -> np.ndarray:
    """The mask tracking gives on ``held_out`` from the painted slices on either side of it, by ``head``."""
    lower, upper = neighbours(truths, held_out)

    def coarse(indices: list[int]) -> dict[int, np.ndarray]:
        embeddings = embedder.get(indices, Task(None, task.cancel_token if task else None))
        return {i: embedder.cells_to_slice(head.predict(embeddings[i])[0]) > 0.5 for i in indices}

    outside = tuple(s for s in (lower - 1, upper + 1) if 0 <= s < embedder.n_slices)
    masks = track(embedder.n_slices, {lower: truths[lower], upper: truths[upper]}, coarse, growth, outside)
    return masks.get(held_out, np.zeros_like(truths[held_out]))


def _evenly(items: list[int], count: int) -> list[int]:
    """Up to ``count`` of ``items``, spread evenly, ends included."""
    if not items:
        return []
    return [items[i] for i in np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int)]


def tight(mask: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """``mask`` cut to where the head (its probability on the slice) is confident: a 0.5 contour of cell
    probabilities runs through the structure's partly covered border cells, a band ~half a cell too wide."""
    return mask & (probability > OUTLINE_THRESHOLD)


def within(mask: np.ndarray, embedder: SliceEmbedder) -> np.ndarray:
    """The coarse mask grown by the refinement margin, in slice voxels."""
    from scipy import ndimage as ndi

    spacing = float(np.mean(embedder.letterbox.spacing))
    return ndi.binary_dilation(mask, disk(REFINE_MARGIN_MM / spacing)) if mask.any() else mask


class SelfPromptModel(AdaptedModel):
    backend_name = SelfPromptSamBackend.name

    def __init__(
        self,
        head: CellHead,
        refine: dict[int, bool],
        priors: dict[int, IntensityPrior],
        axis: int,
        class_names: dict[int, str],
        window: dict,
        checkpoint: str | None,
        model_type: str,
        support: SupportSet | None = None,
        fusion: dict[int, str] | None = None,
    ) -> None:
        self.head, self.refine, self.priors, self.axis = head, refine, priors, axis
        self.fusion = dict(fusion or {})  # per class, how interpolated painted outlines combine (shape_prior)
        self.class_names = class_names
        self.window, self.checkpoint, self.model_type = window, checkpoint, model_type
        self.support = support  # seeds for tracking on the painted volume; never saved

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "axis": self.axis,
            "refine": {str(k): v for k, v in self.refine.items()},
            "fusion": {str(k): v for k, v in self.fusion.items()},
            "window": self.window,
            "checkpoint": self.checkpoint,
            "model_type": self.model_type,
            "model": "litemedsam" if self.checkpoint is None else f"sam_{self.model_type}",
        }
        arrays = self.head.to_arrays() | {f"prior_{v}": p.log_ratio for v, p in self.priors.items()}
        return meta, arrays

    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        backend = SelfPromptSamBackend(self.checkpoint, self.model_type, self.window)
        embedder = backend.embedder(volume, self.axis, device)
        probabilities: dict[int, np.ndarray] = {}  # slice -> (C, h, w) coarse probabilities

        def coarse(indices: list[int]) -> dict[int, np.ndarray]:
            needed = [i for i in indices if i not in probabilities]
            # How many slices tracking will reach is unknown up front: progress is reported per wave below,
            # the encoder only checks for cancellation.
            embeddings = embedder.get(needed, Task(None, task.cancel_token))
            for i in needed:
                cells = self.head.predict(embeddings[i])
                probabilities[i] = np.stack([embedder.cells_to_slice(c) for c in cells])
            return {i: probabilities[i] for i in indices}

        seeds = self._seeds(volume, embedder, coarse, task)
        growth = growth_px(volume, self.axis, embedder)
        masks: dict[int, dict[int, np.ndarray]] = {}
        for n, value in enumerate(self.head.values):
            row = self.head.values.index(value)
            painted, negatives = seeds[value]
            start, span = 0.1 + 0.6 * n / len(self.head.values), 0.6 / len(self.head.values)
            task.report(start, f"tracking class {value}")

            def on_wave(wave: int, count: int, start=start, span=span, value=value) -> None:
                # Structures rarely span more than half the volume: a fair scale for a bar that must not go back.
                done = min(wave / max(embedder.n_slices / 2, 1), 0.95)
                task.report(start + span * done, f"tracking class {value}: {count} more slices")

            masks[value] = track(
                embedder.n_slices,
                painted,
                lambda idx, row=row: {i: p[row] > 0.5 for i, p in coarse(idx).items()},
                growth,
                negatives,
                lambda s, component, prior=self.priors[value]: prior.looks_like_structure(
                    embedder.image_slice(s)[component]
                ),
                on_wave,
            )
        labels = np.zeros(volume.shape, np.uint16)
        spacing = in_plane_spacing(volume, self.axis)
        shapes = {value: interpolated_slices(seeds[value][0], spacing) for value in self.head.values}
        self._assemble(labels, masks, shapes, embedder, probabilities, task.sub(0.7, 1.0))
        return labels

    def _seeds(self, volume: Volume, embedder: SliceEmbedder, coarse, task: Task):
        """Per class: the masks tracking starts from, and the slices known to be empty of it."""
        support = self.support
        if support is not None and support.labels.same_grid(volume) and support.axis == self.axis:
            return {
                c.value: (
                    {s: support.slice_of(support.labels.array, s) == c.value for s in c.slices},
                    tuple(s for s in support.negative_slices(c.value) if s not in c.slices),
                )
                for c in support.classes
            }
        # A new volume (fewshot3d apply): no painted slice; start from the slice where the head is
        # most confident of each class, found on every slice.
        probs = coarse(list(range(embedder.n_slices)))
        seeds = {}
        for row, value in enumerate(self.head.values):
            area = {i: float((p[row] > 0.5).sum()) for i, p in probs.items()}
            best = max(area, key=area.get)
            seeds[value] = ({best: probs[best][row] > 0.5} if area[best] > 0 else {}, ())
        return seeds

    def _assemble(self, labels, masks, shapes, embedder: SliceEmbedder, probabilities, task: Task) -> None:
        """Refine where it helps, combine with the interpolated painted outlines where that helps, then write
        classes into the label volume; overlaps go to the most confident."""
        best = np.zeros(labels.shape, np.float32)
        for n, value in enumerate(self.head.values):
            row = self.head.values.index(value)
            fusion = self.fusion.get(value, "none")
            reached = masks[value] | {i: np.zeros_like(m) for i, m in shapes[value].items() if i not in masks[value]}
            for index, mask in sorted(reached.items()):
                task.report(n / len(self.head.values), f"refining class {value}")
                if self.refine.get(value) and index in probabilities and mask.any():
                    refined = embedder.refine(index, mask)
                    if refined is not None:
                        mask = refined & within(mask, embedder)
                elif index in probabilities:
                    mask = tight(mask, probabilities[index][row])
                mask = fuse(mask, shapes[value].get(index), fusion)
                if not mask.any():
                    continue
                confidence = probabilities[index][row] if index in probabilities else np.ones(mask.shape, np.float32)
                where: list = [slice(None)] * 3
                where[self.axis] = index
                slice_best, slice_labels = best[tuple(where)], labels[tuple(where)]
                take = mask & (confidence >= slice_best)
                slice_labels[take] = value
                slice_best[take] = confidence[take]
