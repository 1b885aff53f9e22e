"""What every segmentation backend provides to the engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..masks import take_slice
from ..progress import Task
from ..support import SupportSet
from ..volume import Volume

#: The slice (array index along the embedding axis) the user is looking at now, or None: background embedding asks
#: it as it goes, so that the slices the user is about to paint are ready first.
Focus = Callable[[], "int | None"]


@dataclass
class EncoderClock:
    """Seconds and slices a backend's image encoder has spent: the benchmark splits embedding time from the rest
    with it (backends without an encoder leave it at zero)."""

    seconds: float = 0.0
    slices: int = 0

    def add(self, seconds: float, slices: int) -> None:
        self.seconds += seconds
        self.slices += slices


class AdaptedModel(ABC):
    """A backend adapted to one support set; segmenting is a pure function of (model, volume)."""

    backend_name: str
    class_names: dict[int, str]

    @abstractmethod
    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        """Integer labels on ``volume``'s grid: 0 background, else a class value."""

    def segment_with_notes(self, volume: Volume, device: str, task: Task) -> tuple[np.ndarray, list[str]]:
        """:meth:`segment` plus one line per class it could not find with confidence (front ends show them)."""
        return self.segment(volume, device, task), []

    def segment_slice(self, volume: Volume, axis: int, index: int, device: str, task: Task) -> np.ndarray:
        """Slice ``index`` along array ``axis`` of what :meth:`segment` gives: the hybrid's held-out comparison needs
        one slice per fold, and a backend that can find it from the slices around it (not the whole volume)
        overrides this. By default the whole volume is segmented and cut."""
        labels, _ = self.segment_with_notes(volume, device, task)
        return take_slice(labels, axis, index)

    def check_volume(self, volume: Volume) -> str | None:
        """Why applying this model to ``volume`` (not the one it was adapted on) would be unreliable, or None."""
        return None

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able settings and named arrays that rebuild this model (only for saveable backends)."""
        raise TypeError(f"backend {self.backend_name} cannot save an adapted model")


class Backend(ABC):
    """Adapts to painted slices. Subclasses set the class attributes below."""

    name: str = ""
    description: str = ""
    #: Painted slices each class needs (interpolation needs two to interpolate between).
    min_slices_per_class: int = 1
    #: Whether an adapted model can be saved and applied to other volumes.
    can_save: bool = False

    def __init__(self) -> None:
        self.encoder_clock = EncoderClock()

    def embed(  # noqa: B027 - optional hook
        self, volume: Volume, device: str, task: Task, axis: int, focus: Focus | None = None
    ) -> None:
        """Precompute what adapting needs from the image alone (cached), slices along array ``axis``; a backend that
        works slice by slice does those nearest ``focus()`` (the slice the user looks at, asked as it goes) first."""

    @abstractmethod
    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        """Fit to the painted slices of ``support`` (on ``volume``'s grid)."""

    def encoder_check(self, volume: Volume, labels: np.ndarray, axis: int, device: str, slices: int = 4) -> dict | None:
        """For a backend with an image encoder: its runtime against the plain fp32 reference on the same slices of
        ``volume`` where ``labels`` has a structure (seconds per slice; Dice of the masks decoded from each), for the
        bench's record. None: no encoder."""
        return None

    def slice_stride(self, volume: Volume, axis: int) -> int:
        """Every how many slices along ``axis`` this backend encodes one while segmenting (1: every slice). Backends
        that step over thin slices take a ``track_step_mm`` option (0: every slice), which the bench uses to measure
        what stepping costs."""
        return 1

    def from_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> AdaptedModel:
        """Rebuild a saved model (inverse of :meth:`AdaptedModel.to_state`)."""
        raise TypeError(f"backend {self.name} cannot load a saved model")
