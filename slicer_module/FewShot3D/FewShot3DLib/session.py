"""The module's annotation state and its calls to the engine, free of Slicer so that it runs and is tested anywhere.

The painted segmentation is only ever read. Predictions go to a separate output segmentation; the prediction as
last shown is remembered, so that the slices a user corrects there with Segment Editor can be found (they differ
from what was shown) and become support for "Re-adapt" (``support.changed_slices`` / ``merge_reviewed``, the same
rule the napari plugin uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_fewshot3d import engine
from napari_fewshot3d.backends import AdaptedModel, Backend, get_backend
from napari_fewshot3d.colors import class_color
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.progress import Task
from napari_fewshot3d.support import SupportSet, changed_slices, merge_reviewed
from napari_fewshot3d.volume import Volume

from .geometry import Segment, SegmentClass, classes_of, labels_from_segments, segments_from_labels


@dataclass
class AdaptPlan:
    """Everything one adaptation needs, gathered on the GUI thread before the engine runs elsewhere."""

    image: Volume
    support: SupportSet
    classes: list[SegmentClass]
    reviewed: set[int]
    readapt: bool


@dataclass
class Prediction:
    """What a finished engine job hands back to the GUI thread."""

    labels: Volume
    model: AdaptedModel
    classes: list[SegmentClass]
    plan: AdaptPlan | None = None

    def segments(self) -> list[Segment]:
        """The output segments (one per class, empty ones included so they can be painted into)."""
        return segments_from_labels(self.labels, self.classes)

    def summary(self) -> str:
        if self.plan is None:
            return f"applied a saved {self.model.backend_name} model"
        painted = ", ".join(f"{c.name}: {len(c.slices)} slices" for c in self.plan.support.classes)
        return f"{self.model.backend_name}; {painted}"


@dataclass
class FewShotSession:
    """What the annotation of one input volume along one axis has produced so far."""

    key: tuple[str, str] | None = None
    classes: list[SegmentClass] = field(default_factory=list)
    model: AdaptedModel | None = None
    #: The prediction as last shown, ``[i, j, k]`` labels on the input grid; None when nothing can be re-adapted.
    shown: np.ndarray | None = None
    #: Slices corrected by the user in any round; they stay support in later rounds.
    reviewed: set[int] = field(default_factory=set)
    backends: dict[str, Backend] = field(default_factory=dict)

    def backend(self, name: str) -> Backend:
        """One backend object per name, so that what it caches (slice embeddings) serves every round."""
        if name not in self.backends:
            self.backends[name] = get_backend(name)
        return self.backends[name]

    def select(self, volume_id: str, axis: str) -> None:
        """Another input volume or axis starts a new annotation: earlier corrections do not apply to it."""
        if self.key != (volume_id, axis):
            self.key = (volume_id, axis)
            self.classes, self.model, self.shown, self.reviewed = [], None, None, set()

    def plan(
        self, image: Volume, axis: str, painted: Sequence[Segment], corrected: Sequence[Segment] | None = None
    ) -> AdaptPlan:
        """The support set from the painted segments, plus (re-adapting) the slices corrected in the output."""
        painted = [s for s in painted if np.any(s.mask)]
        if not painted:
            raise InputError("nothing painted: paint a few slices of each structure with Segment Editor")
        classes = classes_of(painted)
        labels = labels_from_segments(image, painted, classes)
        array_axis = image.slicing_axis(axis)
        if corrected is None:
            support = SupportSet.from_labels(labels, array_axis)
            return AdaptPlan(image, support, classes, set(), readapt=False)
        if self.shown is None:
            raise InputError("nothing to re-adapt: run 'Adapt and segment' first")
        if [c.segment_id for c in classes] != [c.segment_id for c in self.classes]:
            raise InputError("the painted segments changed since the last 'Adapt and segment': adapt again")
        gone = [c.name for c in self.classes if c.segment_id not in {s.segment_id for s in corrected}]
        if gone:
            raise InputError(f"segment {gone[0]!r} was removed from the output segmentation: adapt again")
        prediction = labels_from_segments(image, corrected, self.classes).array
        reviewed = self.reviewed | changed_slices(self.shown, prediction, array_axis)
        merged, empty = merge_reviewed(labels, prediction, reviewed, array_axis)
        merged.metadata = labels.metadata
        support = SupportSet.from_labels(merged, array_axis, empty_slices=empty)
        return AdaptPlan(image, support, classes, reviewed, readapt=True)

    def adapt_and_segment(self, plan: AdaptPlan, backend: str, device: str, task: Task) -> Prediction:
        """The engine's ``run`` (adapt, then segment the same volume); safe to call from a worker thread."""
        labels, model = engine.run(plan.image, plan.support, self.backend(backend), device, task)
        return Prediction(labels, model, plan.classes, plan)

    def record(self, prediction: Prediction) -> None:
        """Remember what is now shown in the output segmentation (call on the GUI thread once it is written)."""
        self.model = prediction.model
        if prediction.plan is None:  # a saved model applied: no painted support to re-adapt with
            self.classes, self.shown, self.reviewed = list(prediction.classes), None, set()
            return
        self.classes = list(prediction.classes)
        self.shown = np.array(prediction.labels.array, copy=True)
        self.reviewed = set(prediction.plan.reviewed) if prediction.plan.readapt else set()

    def save_model(self, path: str | Path) -> Path:
        """Write the last adapted model to a file, to apply it to other volumes of the same kind."""
        if self.model is None:
            raise InputError("no adapted model yet: run 'Adapt and segment' first")
        if not get_backend(self.model.backend_name).can_save:
            raise InputError(f"backend {self.model.backend_name} learns nothing that could be saved")
        return engine.save_model(self.model, path)


def apply_model(path: str | Path, image: Volume, device: str, task: Task) -> Prediction:
    """Segment ``image`` with a model file saved earlier (on this or another volume); safe in a worker thread."""
    model = engine.load_model(path)
    labels = engine.segment(model, image, device=device, progress=task)
    classes = [
        SegmentClass(value, f"fewshot_{value}", name, class_color(value))
        for value, name in sorted(model.class_names.items())
    ]
    return Prediction(labels, model, classes)
