"""A self-prompt model adapted to one support set: it tracks each class slice by slice from its seeds, refines
where the held-out choice said so, and resolves overlaps by the head's confidence.

On the volume it was adapted on, the seeds are the painted slices. On any other scan (``fewshot3d apply``) the
slices are shown at the physical pixel size it was adapted at, and each class is first found as a whole 3D
candidate (:mod:`.candidates`); a class found nowhere plausible comes back empty, with a note saying so."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ...masks import take_slice
from ...preprocess import modality_mismatch
from ...progress import Task
from ...support import SupportSet
from ...volume import Volume
from ..base import AdaptedModel
from .candidates import ClassProfile, candidates, choose, coarse_indices, seed_of
from .embedder import SliceEmbedder
from .head import CellHead
from .intensity_prior import IntensityPrior
from .outline import growth_px, in_plane_spacing, tight, track_stride, within
from .propagation import BoxPropagation
from .self_training import second_look_head
from .shape_prior import fuse, interpolated_slices
from .tracking import fill_between, track

NAME = "selfprompt-sam"


class Embedders(Protocol):
    """What a model needs from its backend: the slices of a volume as a SAM model sees them, through its cache,
    and how thin a slice tracking steps over (mm; 0: none)."""

    track_step_mm: float

    def embedder(
        self,
        volume: Volume,
        axis: int,
        device: str,
        checkpoint: str | None,
        model_type: str,
        window: dict,
        pixel_mm: float = 0.0,
    ) -> SliceEmbedder: ...


class SelfPromptModel(AdaptedModel):
    backend_name = NAME

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
        embedders: Embedders,
        support: SupportSet | None = None,
        fusion: dict[int, str] | None = None,
        transfer: Transfer | None = None,
    ) -> None:
        self.head, self.refine, self.priors, self.axis = head, refine, priors, axis
        self.fusion = dict(fusion or {})  # per class, how interpolated painted outlines combine (shape_prior)
        self.class_names = class_names
        self.window, self.checkpoint, self.model_type = window, checkpoint, model_type
        self.support = support  # seeds for tracking on the painted volume; never saved
        self.embedders = embedders  # the backend that adapted or loaded it: its cache and loaded SAM serve segment
        self.transfer = transfer or Transfer()

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "axis": self.axis,
            "refine": {str(k): v for k, v in self.refine.items()},
            "fusion": {str(k): v for k, v in self.fusion.items()},
            "window": self.window,
            "checkpoint": self.checkpoint,
            "model_type": self.model_type,
            "model": "litemedsam" if self.checkpoint is None else f"sam_{self.model_type}",
        } | self.transfer.to_json()
        arrays = self.head.to_arrays() | {f"prior_{v}": p.log_ratio for v, p in self.priors.items()}
        return meta, arrays

    def check_volume(self, volume: Volume) -> str | None:
        """Why applying this model to ``volume`` would be unreliable (another modality), or None."""
        if self.transfer.modality is None:
            return None
        # what the scan is, whatever the model's window forces
        why = "its embeddings do not transfer across modalities"
        return modality_mismatch(self.transfer.modality, volume.array, why)

    def _on_own_volume(self, volume: Volume) -> bool:
        support = self.support
        return support is not None and support.labels.same_grid(volume) and support.axis == self.axis

    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        return self.segment_with_notes(volume, device, task)[0]

    def segment_with_notes(self, volume: Volume, device: str, task: Task) -> tuple[np.ndarray, list[str]]:
        return self._segment(volume, device, task, None)

    def segment_slice(self, volume: Volume, axis: int, index: int, device: str, task: Task) -> np.ndarray:
        """On the painted volume, one slice: a class painted on both sides of it is tracked only across that gap
        (tracking never crosses a painted slice, so the slice gets what the whole volume's tracking gives it)."""
        if axis != self.axis or not self._on_own_volume(volume):
            return super().segment_slice(volume, axis, index, device, task)
        return take_slice(self._segment(volume, device, task, index)[0], axis, index)

    def _segment(self, volume: Volume, device: str, task: Task, only: int | None) -> tuple[np.ndarray, list[str]]:
        """The labels of every slice, or (``only``) of that one slice alone; the rest of the array stays 0. On the
        painted volume the whole-volume labels get a second look (:mod:`.self_training`)."""
        own = self._on_own_volume(volume)
        embedder = self.embedders.embedder(
            volume,
            self.axis,
            device,
            self.checkpoint,
            self.model_type,
            self.window,
            pixel_mm=0.0 if own else self.transfer.pixel_mm,
        )
        notes: list[str] = []
        coarse = _Coarse(self.head, embedder, task)
        seeds = self._own_seeds() if own else self._found_seeds(volume, embedder, coarse, notes, task.sub(0.0, 0.1))
        if only is not None:
            seeds = {value: _across_gap(painted, negatives, only) for value, (painted, negatives) in seeds.items()}
        # Classes painted on one slice get SAM's box propagation where tracking loses them, and a second look.
        one_slice = self._second_look_classes() if own and only is None else []
        first = task.sub(0.1, 0.55 if one_slice else 1.0)
        labels = self._tracked(volume, embedder, coarse, seeds, only, first, one_slice)
        if one_slice:
            assert self.support is not None
            task.report(0.55, "second look: refitting the head on the tracked slices")
            head = second_look_head(self.head, embedder, self.support, self._tracked_masks(labels, one_slice))
            again_coarse = _Coarse(head, embedder, task)
            again = self._tracked(volume, embedder, again_coarse, seeds, None, task.sub(0.6, 1.0), one_slice)
            added = (labels == 0) & np.isin(again, one_slice)  # only adds: the first pass keeps what it found
            labels[added] = again[added]
        return labels, notes

    def _second_look_classes(self) -> list[int]:
        """The classes painted on one slice only: those the second look helps (with more painted slices the head
        has already seen the structure change, and the bench measured the second look slightly worse: at k=3
        0.919 -> 0.917, the ends of the bladder and an MR kidney overgrown)."""
        support = self.support
        return [] if support is None else [c.value for c in support.classes if len(c.slices) == 1]

    def _tracked_masks(self, labels: np.ndarray, values: list[int]) -> dict[int, dict[int, np.ndarray]]:
        """Per class of ``values``, its mask on every slice it was found on but not painted on."""
        support = self.support
        assert support is not None
        out: dict[int, dict[int, np.ndarray]] = {}
        for c in support.classes:
            if c.value not in values:
                continue
            present = np.flatnonzero(np.any(labels == c.value, axis=tuple(a for a in range(3) if a != self.axis)))
            out[c.value] = {int(s): take_slice(labels, self.axis, s) == c.value for s in present if s not in c.slices}
        return out

    def _tracked(
        self,
        volume: Volume,
        embedder: SliceEmbedder,
        coarse: _Coarse,
        seeds,
        only,
        task: Task,
        propagated: Sequence[int] = (),
    ) -> np.ndarray:
        """Every class tracked from its seeds with ``coarse``'s head, then assembled into one label volume; classes
        in ``propagated`` continued by SAM's box propagation where the head loses them (:mod:`.propagation`)."""
        head = coarse.head
        growth = growth_px(volume, self.axis, embedder)
        stride = track_stride(volume, self.axis, self.embedders.track_step_mm)
        masks: dict[int, dict[int, np.ndarray]] = {}
        continued: dict[int, BoxPropagation] = {}
        for n, value in enumerate(head.values):
            row = head.values.index(value)
            painted, negatives = seeds[value]

            def looks_right(s: int, component: np.ndarray, prior=self.priors[value]) -> bool:
                return prior.looks_like_structure(embedder.image_slice(s)[component])

            if value in propagated:
                continued[value] = BoxPropagation(embedder, looks_right)
            start, span = 0.7 * n / len(head.values), 0.7 / len(head.values)
            task.report(start, f"tracking class {value}")

            def on_wave(wave: int, count: int, start=start, span=span, value=value) -> None:
                # Structures rarely span more than half the volume: a fair scale for a bar that must not go back.
                done = min(wave / max(embedder.n_slices / 2 / stride, 1), 0.95)
                task.report(start + span * done, f"tracking class {value}: {count} more slices")

            masks[value] = track(
                embedder.n_slices,
                painted,
                lambda idx, row=row: {i: p[row] > 0.5 for i, p in coarse(idx).items()},
                growth,
                negatives,
                looks_right,
                on_wave,
                stride,
                continue_lost=continued.get(value),
            )
        labels = np.zeros(volume.shape, np.uint16)
        spacing = in_plane_spacing(volume, self.axis)
        # The painted outlines morphed between painted slices: only where they are fused with the masks (two
        # distance maps per slice between painted ones; with fusion "none" they would change nothing).
        fused = [value for value in head.values if self.fusion.get(value, "none") != "none"]
        shapes = {v: {} for v in head.values} | {v: interpolated_slices(seeds[v][0], spacing, only) for v in fused}
        stepping = (spacing, stride, only)
        as_drawn = {value: propagation.slices for value, propagation in continued.items()}
        self._assemble(labels, masks, shapes, stepping, embedder, coarse, as_drawn, task.sub(0.7, 1.0))
        return labels

    def _own_seeds(self) -> dict[int, tuple[dict[int, np.ndarray], tuple[int, ...]]]:
        """Per class: the painted masks tracking starts from, and the slices known to be empty of it."""
        support = self.support
        assert support is not None
        return {
            c.value: (
                {s: support.slice_of(support.labels.array, s) == c.value for s in c.slices},
                tuple(s for s in support.negative_slices(c.value) if s not in c.slices),
            )
            for c in support.classes
        }

    def _found_seeds(self, volume: Volume, embedder: SliceEmbedder, coarse, notes: list[str], task: Task):
        """A scan without painted slices: each class's seed is the largest cross-section of its most plausible 3D
        candidate on a coarse subset of slices; a class without one gets no seed (an empty mask) and a note."""
        thickness = float(volume.spacing[self.axis])
        indices = coarse_indices(embedder.n_slices, thickness)
        step_mm = thickness * (indices[1] - indices[0] if len(indices) > 1 else 1)
        probs = coarse(indices, task)
        images = {i: embedder.image_slice(i) for i in indices}
        pixel_area = float(np.prod(in_plane_spacing(volume, self.axis)))
        seeds = {}
        for row, value in enumerate(self.head.values):
            found = candidates({i: p[row] for i, p in probs.items()}, images, self.priors[value], pixel_area, step_mm)
            chosen, reason = choose(found, self.transfer.profiles.get(value))
            if chosen is None:
                name = self.class_names.get(value, str(value))
                notes.append(f"{name} (label {value}) not found: {reason}; its mask is empty")
            seeds[value] = (seed_of(chosen) if chosen is not None else {}, ())
        return seeds

    def _assemble(self, labels, masks, shapes, stepping, embedder: SliceEmbedder, coarse: _Coarse, as_drawn, task):
        """Refine where it helps, fill the slices tracking stepped over, combine with the interpolated painted
        outlines where that helps, then write classes into the label volume; overlaps go to the most confident.
        ``as_drawn``: per class, the slices SAM's box propagation continued, shown as SAM drew them."""
        spacing, stride, only = stepping
        values, probabilities = coarse.head.values, coarse.probabilities
        best = np.zeros(labels.shape, np.float32)
        for n, value in enumerate(values):
            task.report(n / len(values), f"refining class {value}")
            row = values.index(value)
            fusion = self.fusion.get(value, "none")
            tracked = masks[value] if only is None else _around(masks[value], only)
            drawn = as_drawn.get(value, set())
            outlines = {
                i: m if i in drawn else self._outline(i, m, row, value, embedder, probabilities)
                for i, m in tracked.items()
            }
            outlines |= fill_between(outlines, spacing, stride)
            if only is not None:
                outlines = {i: m for i, m in outlines.items() if i == only}
            outlines |= {i: np.zeros_like(m) for i, m in shapes[value].items() if i not in outlines}
            for index, mask in sorted(outlines.items()):
                mask = fuse(mask, shapes[value].get(index), fusion)
                if not mask.any():
                    continue
                confidence = probabilities[index][row] if index in probabilities else np.ones(mask.shape, np.float32)
                slice_best, slice_labels = take_slice(best, self.axis, index), take_slice(labels, self.axis, index)
                take = mask & (confidence >= slice_best)
                slice_labels[take] = value
                slice_best[take] = confidence[take]

    def _outline(self, index: int, mask: np.ndarray, row: int, value: int, embedder: SliceEmbedder, probabilities):
        """A tracked slice's mask as shown: SAM's refinement (kept near the coarse mask) or the head's tight outline."""
        if index not in probabilities:  # a painted slice: its painting
            return mask
        if self.refine.get(value) and mask.any():
            refined = embedder.refine(index, mask)
            return mask if refined is None else refined & within(mask, embedder)
        return tight(mask, probabilities[index][row])


class _Coarse:
    """A head's coarse per-class probabilities on slices, computed when first asked (encoding them if needed)."""

    def __init__(self, head: CellHead, embedder: SliceEmbedder, task: Task) -> None:
        self.head, self.embedder, self.task = head, embedder, task
        self.probabilities: dict[int, np.ndarray] = {}  # slice -> (C, h, w)

    def __call__(self, indices: list[int], report: Task | None = None) -> dict[int, np.ndarray]:
        needed = [i for i in indices if i not in self.probabilities]
        # How many slices tracking will reach is unknown up front: progress is reported per wave, the encoder
        # only checks for cancellation (the coarse search on a new scan reports its own).
        embeddings = self.embedder.get(needed, report or Task(None, self.task.cancel_token))
        for i in needed:
            cells = self.head.predict(embeddings[i])
            self.probabilities[i] = np.stack([self.embedder.cells_to_slice(c) for c in cells])
        return {i: self.probabilities[i] for i in indices}


def _across_gap(painted: dict[int, np.ndarray], negatives: tuple[int, ...], index: int):
    """A class's seeds for segmenting slice ``index`` alone: when painted on both sides of it, the two painted
    slices around it, with the slices just beyond them marked empty so that tracking stays in the gap between;
    otherwise (painted on it, or on one side only) all of them."""
    below = [s for s in painted if s < index]
    above = [s for s in painted if s > index]
    if index in painted or not below or not above:
        return painted, negatives
    lower, upper = max(below), min(above)
    inside = tuple(s for s in negatives if lower < s < upper)
    return {lower: painted[lower], upper: painted[upper]}, (*inside, lower - 1, upper + 1)


def _around(masks: dict[int, np.ndarray], index: int) -> dict[int, np.ndarray]:
    """The tracked masks that slice ``index`` is made from: its own, or the nearest on either side of it."""
    if index in masks:
        return {index: masks[index]}
    below = [s for s in masks if s < index]
    above = [s for s in masks if s > index]
    return {s: masks[s] for s in (max(below, default=None), min(above, default=None)) if s is not None}


class Transfer:
    """What a saved model records so that it can be applied to other scans: the mm per model pixel it was adapted
    at, the modality, and per class a :class:`ClassProfile`. Models of format 1 have none of it (0 / None / {})."""

    def __init__(
        self, pixel_mm: float = 0.0, modality: str | None = None, profiles: dict[int, ClassProfile] | None = None
    ) -> None:
        self.pixel_mm, self.modality, self.profiles = float(pixel_mm), modality, dict(profiles or {})

    def to_json(self) -> dict[str, Any]:
        return {
            "pixel_mm": self.pixel_mm,
            "modality": self.modality,
            "profiles": {str(v): p.to_json() for v, p in self.profiles.items()},
        }

    @classmethod
    def from_json(cls, meta: dict[str, Any]) -> Transfer:
        profiles = {int(v): ClassProfile.from_json(p) for v, p in (meta.get("profiles") or {}).items()}
        return cls(float(meta.get("pixel_mm") or 0.0), meta.get("modality"), profiles)
