"""The pixel-classifier backend: ilastik's recipe (3D filter bank, random forest, connected components).

A fast CPU backend that needs no network weights, and the classic peer the bench reports beside Fill between
slices. Features depend on the image alone, so they are computed once per volume (in napari, in the background
while the user paints) and kept; adapting is then the forests' fit (seconds), segmenting their prediction.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ...masks import take_slice
from ...preprocess import intensity_window, modality_mismatch, modality_of
from ...progress import Task
from ...support import SupportSet
from ...volume import Volume
from ..base import AdaptedModel, Backend, Focus
from .features import N_FEATURES, filter_bank
from .forest import TrainingSet, fit, probability, training_set
from .grid import WorkingGrid
from .shapes import keep_structures

NAME = "pixel-classifier"
#: MR intensities through these percentiles (CT through the soft-tissue window).
MR_PERCENTILES = (1.0, 99.0)
#: Bumped when features change meaning: a model with other features is refused, not misread.
FEATURE_SET = "ilastik-61"


class PixelClassifierBackend(Backend):
    name = NAME
    description = "Pixel classifier (ilastik-style): 3D filter bank + random forest per class; CPU, no weights"
    min_slices_per_class = 1
    can_save = True

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self._features: tuple[tuple, WorkingGrid, np.ndarray] | None = None  # the last volume's, by its key

    def features(self, volume: Volume, task: Task, spacing_mm: float | None = None) -> tuple[WorkingGrid, np.ndarray]:
        """The filter bank of ``volume`` on its working grid (at ``spacing_mm`` when given), computed once."""
        grid = WorkingGrid.for_scan(volume.shape, volume.spacing, spacing_mm)
        key = (volume.fingerprint(), grid)
        if self._features is None or self._features[0] != key:
            self._features = None  # let the previous volume's go before computing the next
            started = time.perf_counter()
            image = intensity_window(volume.array, percentiles=MR_PERCENTILES)
            self._features = (key, grid, filter_bank(grid.sample(image), task))
            # the image-only precompute, as an encoder's (the bench reports it as "embed")
            self.encoder_clock.add(time.perf_counter() - started, 0)
        task.report(1.0, "image features ready")
        return self._features[1], self._features[2]

    def embed(self, volume: Volume, device: str, task: Task, axis: int, focus: Focus | None = None) -> None:
        self.features(volume, task)

    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        grid, features = self.features(volume, task.sub(0.0, 0.8))
        samples = {}
        for n, c in enumerate(support.classes):
            task.report(0.8 + 0.2 * n / len(support.classes), f"sampling painted voxels of {c.name}")
            samples[c.value] = training_set(support, c.value, features, grid, self.seed)
        model = PixelClassifierModel(self, samples, support.class_names, grid.spacing_mm, modality_of(volume.array))
        model.support, model.home = support, volume.fingerprint()
        model.fit(task.sub(0.9, 1.0))
        return model

    def from_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> AdaptedModel:
        if meta.get("feature_set") != FEATURE_SET:
            raise ValueError(f"features {meta.get('feature_set')!r}, this version computes {FEATURE_SET!r}")
        samples = {
            int(value): TrainingSet(arrays[f"x_{value}"], arrays[f"y_{value}"].astype(bool))
            for value in meta["classes"]
        }
        names = {int(k): v for k, v in meta["class_names"].items()}
        return PixelClassifierModel(self, samples, names, float(meta["spacing_mm"]), meta["modality"])


class PixelClassifierModel(AdaptedModel):
    """Per class, the painted samples and (once fitted, lazily after loading) its forest."""

    backend_name = NAME

    def __init__(
        self,
        backend: PixelClassifierBackend,
        samples: dict[int, TrainingSet],
        class_names: dict[int, str],
        spacing_mm: float,
        modality: str,
    ) -> None:
        self.backend = backend
        self.samples = samples
        self.class_names = dict(class_names)
        self.spacing_mm = spacing_mm
        self.modality = modality
        self.forests: dict[int, Any] = {}
        self.support: SupportSet | None = None  # on the volume it was adapted on: its painted voxels seed the masks
        self.home: tuple | None = None

    def fit(self, task: Task) -> None:
        for n, (value, samples) in enumerate(self.samples.items()):
            if value not in self.forests:
                task.report(n / len(self.samples), f"training the forest of {self.class_names[value]}")
                self.forests[value] = fit(samples, self.backend.seed)
        task.report(1.0, "forests trained")

    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        return self.segment_with_notes(volume, device, task)[0]

    def segment_with_notes(self, volume: Volume, device: str, task: Task) -> tuple[np.ndarray, list[str]]:
        self.fit(task.sub(0.0, 0.05))
        own = self._on_own_volume(volume)
        grid, features = self.backend.features(volume, task.sub(0.05, 0.5), None if own else self.spacing_mm)
        labels = self._classify(features, lambda chance: grid.back(chance, volume.shape), task.sub(0.5, 0.9))
        task.report(0.9, "keeping the structures")
        seeds = self.support.labels.array if own and self.support is not None else None
        labels, missing = keep_structures(labels, list(self.samples), seeds)
        notes = [
            f"{self.class_names[v]} (label {v}) not found: the classifier found nothing like it; its mask is empty"
            for v in missing
        ]
        return labels, notes

    def segment_slice(self, volume: Volume, axis: int, index: int, device: str, task: Task) -> np.ndarray:
        """On the painted volume, a slice between painted ones from the slab between them alone: voxels are
        classified one by one, and the structures kept are those the slab's painted voxels touch."""
        support = self.support
        painted = sorted({s for c in support.classes for s in c.slices}) if support is not None else []
        below, above = [s for s in painted if s < index], [s for s in painted if s > index]
        if support is None or axis != support.axis or not self._on_own_volume(volume) or not below or not above:
            return super().segment_slice(volume, axis, index, device, task)
        self.fit(task.sub(0.0, 0.05))
        grid, features = self.backend.features(volume, task.sub(0.05, 0.5))
        start, stop = max(below), min(above) + 1
        rows = grid.covering(axis, start, stop)
        slab = [slice(None)] * 3
        slab[axis] = slice(start, stop)
        shape = tuple(stop - start if a == axis else n for a, n in enumerate(volume.shape))
        within = [slice(None)] * 4
        within[1 + axis] = rows
        labels = self._classify(
            features[tuple(within)],
            lambda chance: grid.back(chance, shape, axis=axis, start=start, rows=rows),
            task.sub(0.5, 0.95),
        )
        labels, _ = keep_structures(labels, list(self.samples), support.labels.array[tuple(slab)])
        return take_slice(labels, axis, index - start)

    def _on_own_volume(self, volume: Volume) -> bool:
        return self.support is not None and self.home == volume.fingerprint()

    def _classify(self, features: np.ndarray, to_scan, task: Task) -> np.ndarray:
        """Each voxel to its most probable class above 0.5 (0: none), on the scan's grid via ``to_scan``."""
        values = list(self.samples)
        labels: np.ndarray | None = None
        best: np.ndarray | None = None
        for n, value in enumerate(values):
            part = task.sub(n / len(values), (n + 1) / len(values))
            chance = to_scan(probability(self.forests[value], features, part))
            if labels is None or best is None:
                labels, best = np.zeros(chance.shape, np.uint16), np.zeros(chance.shape, np.float32)
            wins = (chance > 0.5) & (chance > best)
            labels[wins], best[wins] = value, chance[wins]
        assert labels is not None
        return labels

    def check_volume(self, volume: Volume) -> str | None:
        why = "its intensity features do not transfer across modalities"
        return modality_mismatch(self.modality, volume.array, why)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "feature_set": FEATURE_SET,
            "n_features": N_FEATURES,
            "spacing_mm": self.spacing_mm,
            "modality": self.modality,
            "classes": list(self.samples),
            "class_names": {str(k): v for k, v in self.class_names.items()},
        }
        arrays: dict[str, np.ndarray] = {}
        for value, samples in self.samples.items():
            arrays[f"x_{value}"] = samples.x
            arrays[f"y_{value}"] = samples.y.astype(np.uint8)
        return meta, arrays
