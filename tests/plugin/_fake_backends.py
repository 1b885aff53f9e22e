"""Backends for GUI tests: one slow enough to cancel mid-run, one that learns and saves in milliseconds."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from napari_fewshot3d.backends import AdaptedModel, Backend
from napari_fewshot3d.progress import Task
from napari_fewshot3d.support import SupportSet
from napari_fewshot3d.volume import Volume

#: How long the slow backend would adapt if nobody cancelled it (seconds).
SLOW_SECONDS = 30.0


class _Nothing(AdaptedModel):
    backend_name = "slow-test"

    def __init__(self, class_names: dict[int, str]) -> None:
        self.class_names = class_names

    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        return np.zeros(volume.shape, np.uint8)


class SlowBackend(Backend):
    """Reports progress every 50 ms for SLOW_SECONDS: a run that only a working Cancel ends early."""

    name = "slow-test"

    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        steps = int(SLOW_SECONDS / 0.05)
        for step in range(steps):
            task.report(step / steps, "adapting slowly")
            time.sleep(0.05)
        return _Nothing(support.class_names)


class IntensityRange(AdaptedModel):
    backend_name = "range-test"

    def __init__(self, ranges: dict[int, tuple[float, float]], class_names: dict[int, str]) -> None:
        self.ranges, self.class_names = ranges, class_names

    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        labels = np.zeros(volume.shape, np.uint8)
        for value, (lo, hi) in self.ranges.items():
            labels[(volume.array >= lo) & (volume.array <= hi)] = value
        return labels

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"ranges": {str(k): list(v) for k, v in self.ranges.items()}}, {}


class RangeBackend(Backend):
    """Learns each class's intensity range from the painted voxels: saveable, instant, good enough to test plumbing."""

    name = "range-test"
    can_save = True

    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        ranges = {}
        for cls in support.classes:
            values = volume.array[support.labels.array == cls.value]
            ranges[cls.value] = (float(np.percentile(values, 5)), float(np.percentile(values, 95)))
        return IntensityRange(ranges, support.class_names)

    def from_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> AdaptedModel:
        return IntensityRange({int(k): tuple(v) for k, v in meta["ranges"].items()}, {})


#: How long the embedding backend precomputes (seconds).
EMBED_SECONDS = 3.0


class EmbeddingRangeBackend(RangeBackend):
    """RangeBackend with a background precomputation, like the learned backend's slice embeddings."""

    name = "embed-test"

    def embed(self, volume: Volume, device: str, task: Task, axis: int = 2, focus=None) -> None:
        steps = int(EMBED_SECONDS / 0.05)
        for step in range(steps):
            task.report(step / steps, f"encoding slice {step + 1}/{steps}")
            time.sleep(0.05)
