"""The hybrid backend: per structure, the better of two different learners, chosen on the painting itself; on the
painted image, their combination with Fill between slices (:mod:`.combine`).

selfprompt-sam sees 2D SAM embeddings on a coarse grid and wins from one slice and on most CT organs; the pixel
classifier sees voxel-resolution intensity and texture in 3D and wins on several MR organs. Neither wins
everywhere, and which one wins depends on the structure and the scan, so the choice is measured, not guessed:
each interior painted slice (one with painted slices on both sides) is held out in turn, both are adapted on the
rest and segment that slice (each from the slices between its painted neighbours alone), and the one whose mask
reproduces the held-out painting better keeps the class.
Without an interior slice (one or two painted) selfprompt-sam keeps it: it is the better one from so little.
The choice is what a saved model uses on other scans. On the painted image a structure is shown as the
combination of both learners and Fill between slices instead (:mod:`.combine`): measured in one bench run (k=3, 12
structures, whole-volume Dice) 0.919 against 0.848 for the forest alone (the choice alone: 0.897, the run
before); CT pancreas 0.785 against Fill between slices' 0.629. The held-out slices could not have chosen it: with
one painted slice taken away, Fill between slices across the doubled gap is a much poorer third opinion than it is
with all of them.

A correction tests the learner that was shown: a slice painted after a result is one neither of the previous
round's learners saw, but it is where the shown result was worst, so it is a biased test — the other learner
looks better there by selection alone. So it is used one way only: when re-adapting on the same image, both
previous learners' masks are scored on the newly painted slices, and if the learner shown did at least as well
there as the other, it keeps the class (its worst slice did not favour the other); otherwise the folds decide —
and a corrected slice is never one of them, in this round or a later one, since holding it out would repeat that
biased test (measured: CT bladder k=5, a corrected interior slice held out took the forest, 0.668, where SAM had
0.965). A class kept that way stays kept while nothing new is painted for it.

Where the forest reproduces the held-out painted slices well (mean Dice 0.85 or more, FOREST_ALONE_DICE) the
painted image shows its mask alone: a voxel classifier that good on the painting gains nothing from the vote, where
the other two opinions err together — SAM overruns the ends of an MR organ (the combination's MR kidneys at
k=3: 13-14 % too large from whole slices, 25-31 % from strokes), and from strokes Fill between slices interpolates
the completed outlines, which are wide on MR organs. Measured offline on saved predictions of the bench's 12 structures
at k=3 (so optimistic): whole slices 0.921 -> 0.926, strokes 0.869 -> 0.881; it takes the five MR organs (the
forest's held-out Dice 0.88-0.96), no CT organ (the highest, the CT liver's: 0.844 from whole slices, 0.737 from
strokes). Beyond the painted slices the forest's mask is continued without growing, as in the combination:
whole, it ran on along look-alike tissue (the CT bladder at k=5 after one correction: 0.950 -> 0.668; continued:
0.958). The value comes from the folds of the round that scored the class; a class not scored again
(kept after a correction, or no interior slice left) keeps its last value.

Both learners come from the registry, so this module depends on neither's internals.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...masks import dice
from ...progress import Task
from ...support import SupportSet
from ...volume import Volume
from .. import get_backend
from ..base import AdaptedModel, Backend, Focus
from .model import FILL, FOREST, NAME, SAM, HybridModel

#: Held-out slices per class at most (each costs one adapt and segment of both learners).
MAX_FOLDS = 2
#: How much better (held-out Dice) the forest must do to take a class from selfprompt-sam.
MARGIN = 0.01
#: A forest that reproduces the held-out painted slices this well (mean Dice) is shown alone on the painted image,
#: not combined (see the module's docstring).
FOREST_ALONE_DICE = 0.85


class HybridBackend(Backend):
    name = NAME
    description = "selfprompt-sam, pixel-classifier and Fill between slices combined per structure on the painted image"
    min_slices_per_class = 1
    can_save = True

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        window: dict | None = None,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        track_step_mm: float | None = None,
    ) -> None:
        super().__init__()
        sam_options = {"track_step_mm": track_step_mm} if track_step_mm is not None else {}  # None: SAM's default
        self.parts = {
            SAM: get_backend(
                SAM, checkpoint=checkpoint, model_type=model_type, window=window, cache_dir=cache_dir, **sam_options
            ),
            FOREST: get_backend(FOREST, seed=seed),
        }
        self.fill = get_backend(FILL)  # the third opinion on the painted image
        # one clock for both: SAM's encoding and the forest's image features are the image-only precompute
        self.encoder_clock = self.parts[FOREST].encoder_clock = self.parts[SAM].encoder_clock
        self._last: _Round | None = None

    def embed(self, volume: Volume, device: str, task: Task, axis: int, focus: Focus | None = None) -> None:
        self.parts[SAM].embed(volume, device, task.sub(0.0, 0.65), axis, focus)
        self.parts[FOREST].embed(volume, device, task.sub(0.65, 0.95), axis)
        task.report(0.95, "loading ITK (Fill between slices)")
        self.fill.load()  # type: ignore[attr-defined]  # the interpolate backend's
        task.report(1.0, "ready")

    def encoder_check(self, volume: Volume, labels: np.ndarray, axis: int, device: str, slices: int = 4) -> dict | None:
        return self.parts[SAM].encoder_check(volume, labels, axis, device, slices)

    def slice_stride(self, volume: Volume, axis: int) -> int:
        return self.parts[SAM].slice_stride(volume, axis)

    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        models = {
            SAM: self.parts[SAM].adapt(volume, support, device, task.sub(0.0, 0.3)),
            FOREST: self.parts[FOREST].adapt(volume, support, device, task.sub(0.3, 0.5)),
        }
        home = volume.fingerprint()
        last = _continued(self._last, support, home)
        corrected = _corrected(last, support)
        kept = self._kept_after_corrections(volume, last, support, device, task.sub(0.5, 0.6))
        undecided = [c.value for c in support.classes if c.value not in kept]
        scores = self._held_out_scores(volume, support, undecided, corrected, device, task.sub(0.6, 1.0))
        choices = {c.value: kept.get(c.value) or _choose(scores[c.value]) for c in support.classes}
        painted = {c.value: frozenset(c.slices) for c in support.classes}
        means = _means(scores)
        forest_dice = (last.forest_dice if last is not None else {}) | {
            value: by[FOREST] for value, by in means.items() if FOREST in by
        }
        forest_dice = {value: d for value, d in forest_dice.items() if value in painted}
        paintings = {value: _painting(support, value, slices) for value, slices in painted.items()}
        self._last = _Round(home, painted, paintings, models, choices, kept, corrected, forest_dice)
        task.report(1.0, "adapted")
        model = HybridModel(models, choices, support.class_names, means)
        alone = frozenset(value for value, d in forest_dice.items() if d >= FOREST_ALONE_DICE)
        fill = self.fill.adapt(volume, support, device, Task(None, task.cancel_token))
        model.combine_on(fill, support, home, alone)
        return model

    def _held_out_scores(
        self,
        volume: Volume,
        support: SupportSet,
        values: list[int],
        corrected: dict[int, frozenset[int]],
        device: str,
        task: Task,
    ) -> dict[int, dict[str, list[float]]]:
        """Per class in ``values``, each learner's Dice on its interior painted slices (not those corrected), each
        held out in turn."""
        scores: dict[int, dict[str, list[float]]] = {value: {SAM: [], FOREST: []} for value in values}
        folds = {index: [v for v in fold if v in scores] for index, fold in _folds(support, corrected).items()}
        folds = {index: fold for index, fold in folds.items() if fold}
        for n, (held_out, fold) in enumerate(folds.items()):
            part = task.sub(n / len(folds), (n + 1) / len(folds))
            part.report(0.0, f"comparing the learners on painted slice {held_out}")
            rest = _without(support, held_out)
            truth = support.slice_of(support.labels.array, held_out)
            for m, name in enumerate((SAM, FOREST)):
                step = part.sub(m / 2, (m + 1) / 2)
                model = self.parts[name].adapt(volume, rest, device, step.sub(0.0, 0.5))
                predicted = model.segment_slice(volume, support.axis, held_out, device, step.sub(0.5, 1.0))
                for value in fold:
                    scores[value][name].append(dice(predicted == value, truth == value))
        return scores

    def _kept_after_corrections(
        self, volume: Volume, last: _Round | None, support: SupportSet, device: str, task: Task
    ) -> dict[int, str]:
        """Classes whose learner stays after a correction on this image (see the module's docstring)."""
        if last is None:
            return {}
        new = {
            c.value: sorted(set(c.slices) - last.painted[c.value]) for c in support.classes if c.value in last.painted
        }
        kept = {value: name for value, name in last.kept.items() if value in new and not new[value]}
        new = {value: slices for value, slices in new.items() if slices}
        if not new:
            return kept
        task.report(0.0, "scoring the previous result on the corrected slices")
        found: dict[int, dict[str, float]] = {value: {} for value in new}
        for m, name in enumerate((SAM, FOREST)):
            labels, _ = last.models[name].segment_with_notes(volume, device, task.sub(m / 2, (m + 1) / 2))
            for value, slices in new.items():
                on = [
                    dice(support.slice_of(labels, i) == value, support.slice_of(support.labels.array, i) == value)
                    for i in slices
                ]
                found[value][name] = float(np.mean(on))
        for value, by_learner in found.items():
            shown = last.choices[value]
            other = FOREST if shown == SAM else SAM
            if by_learner[shown] >= by_learner[other]:
                kept[value] = shown
        return kept

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
    """What the last adapt on an image left for the next: its painting, its learners and their choice."""

    home: tuple  # the image's fingerprint
    painted: dict[int, frozenset[int]]
    paintings: dict[int, str]  # per class, a digest of its painting on those slices
    models: dict[str, AdaptedModel]
    choices: dict[int, str]
    kept: dict[int, str]  # the choices a correction kept
    corrected: dict[int, frozenset[int]]  # per class, the slices painted after a result was shown
    forest_dice: dict[int, float]  # per class, the forest's mean held-out Dice when last scored


def _continued(last: _Round | None, support: SupportSet, home: tuple) -> _Round | None:
    """The last round on this image, for the classes this painting continues: a correction adds slices and leaves
    the ones painted before as they were. A class whose painting lost a slice or changed on one is painted anew
    (another set of slices, strokes where whole slices were): the previous round says nothing about it, and
    carrying its choice or its folds' scores over would judge this painting by that one."""
    if last is None or last.home != home:
        return None
    same = {
        c.value
        for c in support.classes
        if c.value in last.painted
        and last.painted[c.value] <= set(c.slices)
        and last.paintings[c.value] == _painting(support, c.value, last.painted[c.value])
    }
    if not same:
        return None

    def only(by_class: dict) -> dict:
        return {value: x for value, x in by_class.items() if value in same}

    return replace(
        last,
        painted=only(last.painted),
        paintings=only(last.paintings),
        choices=only(last.choices),
        kept=only(last.kept),
        corrected=only(last.corrected),
        forest_dice=only(last.forest_dice),
    )


def _painting(support: SupportSet, value: int, slices: frozenset[int]) -> str:
    """A digest of class ``value``'s painting on ``slices``: its voxels and, for completed strokes, which of them
    are uncertain."""
    digest = hashlib.sha1()
    for index in sorted(slices):
        digest.update(np.packbits(support.slice_of(support.labels.array, index) == value).tobytes())
        if support.uncertain is not None:
            digest.update(np.packbits(support.slice_of(support.uncertain, index)).tobytes())
    return digest.hexdigest()


def _corrected(last: _Round | None, support: SupportSet) -> dict[int, frozenset[int]]:
    """Per class, the painted slices that were painted after a result was shown on this image (in any round)."""
    if last is None:
        return {}
    out = {}
    for c in support.classes:
        if c.value in last.painted:
            since = set(c.slices) - last.painted[c.value]
            out[c.value] = frozenset((last.corrected.get(c.value, frozenset()) | since) & set(c.slices))
    return out


def _folds(support: SupportSet, corrected: dict[int, frozenset[int]] | None = None) -> dict[int, list[int]]:
    """Held-out slice -> the classes it is an interior painted slice of, not a corrected one (up to MAX_FOLDS per
    class, spread out)."""
    corrected = corrected or {}
    folds: dict[int, list[int]] = {}
    for c in support.classes:
        interior = [s for s in c.slices[1:-1] if s not in corrected.get(c.value, ())]
        if len(interior) > MAX_FOLDS:
            interior = [interior[round(i)] for i in np.linspace(0, len(interior) - 1, MAX_FOLDS)]
        for index in interior:
            folds.setdefault(index, []).append(c.value)
    return dict(sorted(folds.items()))


def _without(support: SupportSet, held_out: int) -> SupportSet:
    labels = support.labels.array.copy()
    support.slice_of(labels, held_out)[...] = 0
    empty = [s for s in support.empty_slices if s != held_out]
    rest = SupportSet.from_labels(support.labels.with_array(labels), support.axis, support.class_names, empty)
    return replace(rest, uncertain=support.uncertain)  # the completed outlines stay uncertain in every fold


def _choose(scores: dict[str, list[float]]) -> str:
    if not scores[FOREST]:
        return SAM
    return FOREST if np.mean(scores[FOREST]) > np.mean(scores[SAM]) + MARGIN else SAM


def _means(scores: dict[int, dict[str, list[float]]]) -> dict[int, dict[str, float]]:
    return {v: {name: float(np.mean(s)) for name, s in by.items() if s} for v, by in scores.items()}
