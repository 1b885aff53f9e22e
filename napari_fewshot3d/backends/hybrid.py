"""Per structure, the better of two different learners, chosen on the painting itself.

selfprompt-sam sees 2D SAM embeddings on a coarse grid and wins from one slice and on most CT organs; the pixel
classifier sees voxel-resolution intensity and texture in 3D and wins on several MR organs. Neither wins
everywhere, and which one wins depends on the structure and the scan, so the choice is measured, not guessed:
each interior painted slice (one with painted slices on both sides) is held out in turn, both are adapted on the
rest and segment the volume, and the one whose mask reproduces the held-out painting better keeps the class.
Without an interior slice (one or two painted) selfprompt-sam keeps it: it is the better one from so little.

A correction is the best test of all: a slice painted after a result was shown is one neither of the previous
round's learners saw, and the one the user found worst. When re-adapting on the same image, both previous
learners' masks are scored on each newly painted slice and those scores join the folds' (and stay with the
class in later rounds).

Both learners come from the registry, so this module depends on neither's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..masks import dice
from ..progress import Task
from ..support import SupportSet
from ..volume import Volume
from . import get_backend
from .base import AdaptedModel, Backend

NAME = "hybrid"
SAM, FOREST = "selfprompt-sam", "pixel-classifier"
#: Held-out slices per class at most (each costs one adapt and segment of both learners).
MAX_FOLDS = 2
#: How much better (held-out Dice) the forest must do to take a class from selfprompt-sam.
MARGIN = 0.01


class HybridBackend(Backend):
    name = NAME
    description = "per structure, selfprompt-sam or pixel-classifier: whichever reproduces held-out painted slices"
    min_slices_per_class = 1
    can_save = True

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        window: dict | None = None,
        cache_dir: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.parts = {
            SAM: get_backend(SAM, checkpoint=checkpoint, model_type=model_type, window=window, cache_dir=cache_dir),
            FOREST: get_backend(FOREST, seed=seed),
        }
        # one clock for both: SAM's encoding and the forest's image features are the image-only precompute
        self.encoder_clock = self.parts[FOREST].encoder_clock = self.parts[SAM].encoder_clock
        self._last: _Round | None = None

    def embed(self, volume: Volume, device: str, task: Task, axis: int) -> None:
        self.parts[SAM].embed(volume, device, task.sub(0.0, 0.7), axis)
        self.parts[FOREST].embed(volume, device, task.sub(0.7, 1.0), axis)

    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        models = {
            SAM: self.parts[SAM].adapt(volume, support, device, task.sub(0.0, 0.3)),
            FOREST: self.parts[FOREST].adapt(volume, support, device, task.sub(0.3, 0.5)),
        }
        home = volume.fingerprint()
        corrections = self._corrections(volume, home, support, device, task.sub(0.5, 0.6))
        folds = _folds(support)
        scores = {c.value: {SAM: [], FOREST: []} for c in support.classes}
        for n, (held_out, values) in enumerate(folds.items()):
            part = task.sub(0.6 + 0.4 * n / len(folds), 0.6 + 0.4 * (n + 1) / len(folds))
            part.report(0.0, f"comparing the learners on painted slice {held_out}")
            rest = _without(support, held_out)
            truth = support.slice_of(support.labels.array, held_out)
            for m, name in enumerate((SAM, FOREST)):
                step = part.sub(m / 2, (m + 1) / 2)
                model = self.parts[name].adapt(volume, rest, device, step.sub(0.0, 0.5))
                labels, _ = model.segment_with_notes(volume, device, step.sub(0.5, 1.0))
                predicted = support.slice_of(labels, held_out)
                for value in values:
                    scores[value][name].append(dice(predicted == value, truth == value))
        for value, by_learner in corrections.items():
            for name, found in by_learner.items():
                scores[value][name] += found
        choices = {value: _choose(by_learner) for value, by_learner in scores.items()}
        self._last = _Round(home, {c.value: frozenset(c.slices) for c in support.classes}, models, corrections)
        task.report(1.0, "adapted")
        return HybridModel(models, choices, support.class_names, _means(scores))

    def _corrections(
        self, volume: Volume, home: tuple, support: SupportSet, device: str, task: Task
    ) -> dict[int, dict[str, list[float]]]:
        """Per class, each learner's Dice on every slice painted since a previous round on this image (the
        previous round's learners never saw them), after those of earlier rounds."""
        last = self._last if self._last is not None and self._last.home == home else None
        if last is None:
            return {}
        found = {
            value: {name: list(scores) for name, scores in by_learner.items()}
            for value, by_learner in last.corrections.items()
        }
        before = last.painted
        new = {c.value: sorted(set(c.slices) - before[c.value]) for c in support.classes if c.value in before}
        new = {value: slices for value, slices in new.items() if slices}
        if not new:
            return found
        task.report(0.0, "scoring the previous result on the corrected slices")
        for m, name in enumerate((SAM, FOREST)):
            labels, _ = last.models[name].segment_with_notes(volume, device, task.sub(m / 2, (m + 1) / 2))
            for value, slices in new.items():
                for index in slices:
                    truth = support.slice_of(support.labels.array, index) == value
                    predicted = support.slice_of(labels, index) == value
                    found.setdefault(value, {SAM: [], FOREST: []})[name].append(dice(predicted, truth))
        return found

    def from_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> AdaptedModel:
        models = {}
        for name in (SAM, FOREST):
            prefix = f"{name}__"
            part = {key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)}
            models[name] = self.parts[name].from_state(meta["parts"][name], part)
        choices = {int(value): name for value, name in meta["choices"].items()}
        names = {int(k): v for k, v in meta["class_names"].items()}
        for model in models.values():
            model.class_names = dict(names)
        return HybridModel(models, choices, names, {})


@dataclass
class _Round:
    """What the last adapt on an image left for the next: its painting, its learners, the corrections scored."""

    home: tuple  # the image's fingerprint
    painted: dict[int, frozenset[int]]
    models: dict[str, AdaptedModel]
    corrections: dict[int, dict[str, list[float]]]


def _folds(support: SupportSet) -> dict[int, list[int]]:
    """Held-out slice -> the classes it is an interior painted slice of (up to MAX_FOLDS per class, spread out)."""
    folds: dict[int, list[int]] = {}
    for c in support.classes:
        interior = list(c.slices[1:-1])
        if len(interior) > MAX_FOLDS:
            interior = [interior[round(i)] for i in np.linspace(0, len(interior) - 1, MAX_FOLDS)]
        for index in interior:
            folds.setdefault(index, []).append(c.value)
    return dict(sorted(folds.items()))


def _without(support: SupportSet, held_out: int) -> SupportSet:
    labels = support.labels.array.copy()
    support.slice_of(labels, held_out)[...] = 0
    empty = [s for s in support.empty_slices if s != held_out]
    return SupportSet.from_labels(support.labels.with_array(labels), support.axis, support.class_names, empty)


def _choose(scores: dict[str, list[float]]) -> str:
    if not scores[FOREST]:
        return SAM
    return FOREST if np.mean(scores[FOREST]) > np.mean(scores[SAM]) + MARGIN else SAM


def _means(scores: dict[int, dict[str, list[float]]]) -> dict[int, dict[str, float]]:
    return {v: {name: float(np.mean(s)) for name, s in by.items() if s} for v, by in scores.items()}


class HybridModel(AdaptedModel):
    """Both adapted learners and, per class, which one's mask it keeps."""

    backend_name = NAME

    def __init__(
        self,
        models: dict[str, AdaptedModel],
        choices: dict[int, str],
        class_names: dict[int, str],
        held_out_dice: dict[int, dict[str, float]],
    ) -> None:
        self.models = models
        self.choices = choices
        self.class_names = dict(class_names)
        #: Per class, each learner's mean Dice on the held-out painted slices (empty for a loaded model).
        self.held_out_dice = held_out_dice

    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        return self.segment_with_notes(volume, device, task)[0]

    def segment_with_notes(self, volume: Volume, device: str, task: Task) -> tuple[np.ndarray, list[str]]:
        needed = [name for name in (SAM, FOREST) if name in self.choices.values()]
        out: np.ndarray | None = None
        notes: list[str] = []
        for n, name in enumerate(needed):
            labels, said = self.models[name].segment_with_notes(
                volume, device, task.sub(n / len(needed), (n + 1) / len(needed))
            )
            mine = [value for value, chosen in self.choices.items() if chosen == name]
            notes += [line for line in said if any(f"(label {value})" in line for value in mine)]
            if out is None:
                out = np.zeros(np.shape(labels), np.asarray(labels).dtype)
            for value in mine:  # a class already placed by the other learner keeps its voxels
                out[(labels == value) & (out == 0)] = value
        assert out is not None
        return out, notes

    def check_volume(self, volume: Volume) -> str | None:
        for name in dict.fromkeys(self.choices.values()):
            problem = self.models[name].check_volume(volume)
            if problem:
                return problem
        return None

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {
            "choices": {str(k): v for k, v in self.choices.items()},
            "class_names": {str(k): v for k, v in self.class_names.items()},
            "parts": {},
        }
        arrays: dict[str, np.ndarray] = {}
        for name, model in self.models.items():
            meta["parts"][name], part = model.to_state()
            arrays |= {f"{name}__{key}": value for key, value in part.items()}
        return meta, arrays
