"""The hybrid's adapted model: both learners, the one chosen per class, and on the painted image their combination
with Fill between slices (:mod:`.combine`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...progress import Task
from ...support import SupportSet
from ...volume import Volume
from ..base import AdaptedModel
from .combine import combined, forest_alone_mask

NAME = "hybrid"
SAM, FOREST, FILL = "selfprompt-sam", "pixel-classifier", "interpolate"


class HybridModel(AdaptedModel):
    """Both adapted learners and, per class, which one's mask it keeps on a scan without painting."""

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
        self._fill: AdaptedModel | None = None
        self._support: SupportSet | None = None
        self._home: tuple | None = None
        self._forest_alone: frozenset[int] = frozenset()

    def combine_on(
        self, fill: AdaptedModel, support: SupportSet, home: tuple, forest_alone: frozenset[int] = frozenset()
    ) -> None:
        """On the image of fingerprint ``home``, show each class of ``support`` as the combination of both learners
        and ``fill``, or for a class in ``forest_alone`` the forest's own mask (never saved: another scan has no
        painted slices)."""
        self._fill, self._support, self._home = fill, support, home
        self._forest_alone = frozenset(forest_alone)

    @property
    def forest_alone(self) -> frozenset[int]:
        """The classes shown as the forest's mask alone on the painted image (see the backend's FOREST_ALONE_DICE)."""
        return self._forest_alone

    @property
    def combined_classes(self) -> list[int]:
        """The classes shown combined on the painted image."""
        support = self._support
        return [] if support is None else [c.value for c in support.classes]

    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        return self.segment_with_notes(volume, device, task)[0]

    def segment_with_notes(self, volume: Volume, device: str, task: Task) -> tuple[np.ndarray, list[str]]:
        combining = self.combined_classes if self._fill is not None and volume.fingerprint() == self._home else []
        needed = [name for name in (SAM, FOREST) if name in self.choices.values() or combining]
        span = 0.9 if combining else 1.0
        found: dict[str, np.ndarray] = {}
        notes: list[str] = []
        for n, name in enumerate(needed):
            labels, said = self.models[name].segment_with_notes(
                volume, device, task.sub(span * n / len(needed), span * (n + 1) / len(needed))
            )
            mine = [value for value, chosen in self.choices.items() if chosen == name and value not in combining]
            notes += [line for line in said if any(f"(label {value})" in line for value in mine)]
            found[name] = np.asarray(labels)
        voted = [value for value in combining if value not in self._forest_alone]  # Fill only where it votes
        filled = self._fill.segment(volume, device, task.sub(0.9, 1.0)) if voted and self._fill else None
        out = np.zeros(found[needed[0]].shape, found[needed[0]].dtype)
        for name in needed:
            for value in [value for value, chosen in self.choices.items() if chosen == name]:
                if value in combining and value in self._forest_alone:
                    mask = self._forest_alone_mask(value, found[FOREST] == value, volume)
                elif filled is not None and value in voted:
                    mask = self._combined(value, found[SAM] == value, found[FOREST] == value, filled == value, volume)
                else:
                    mask = found[name] == value
                out[mask & (out == 0)] = value  # a class already placed keeps its voxels
        return out, notes

    def _combined(self, value: int, sam, forest, filled, volume: Volume) -> np.ndarray:
        assert self._support is not None
        return combined(sam, forest, filled, self._painted(value), self._support.axis, volume.spacing)

    def _forest_alone_mask(self, value: int, forest, volume: Volume) -> np.ndarray:
        assert self._support is not None
        return forest_alone_mask(forest, self._painted(value), self._support.axis, volume.spacing)

    def _painted(self, value: int) -> dict[int, np.ndarray]:
        """Painted slice -> the class's painted mask there, on the image it was painted on."""
        support = self._support
        assert support is not None
        return {s: support.slice_of(support.labels.array, s) == value for s in support.get(value).slices}

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
