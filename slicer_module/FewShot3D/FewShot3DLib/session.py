"""The module's annotation state and its calls to the engine, free of Slicer so that it runs and is tested anywhere.

The painted segmentation is only ever read. Predictions go to a separate output segmentation; the slices a user
corrects there with Segment Editor become support for "Re-adapt" by the rounds of ``napari_fewshot3d.annotation``,
the same object the napari plugin drives (reviewed slices committed only when a round succeeds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_fewshot3d import engine
from napari_fewshot3d.annotation import Annotation, Round
from napari_fewshot3d.backends import AdaptedModel, Backend, get_backend
from napari_fewshot3d.colors import class_color
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.progress import Task
from napari_fewshot3d.support import SupportSet, background_in
from napari_fewshot3d.volume import Volume

from .geometry import Segment, SegmentClass, classes_of, labels_from_segments, segments_from_labels


@dataclass
class AdaptPlan:
    """Everything one adaptation needs, gathered on the GUI thread before the engine runs elsewhere."""

    image: Volume
    classes: list[SegmentClass]
    round: Round

    @property
    def support(self) -> SupportSet:
        return self.round.support

    @property
    def reviewed(self) -> frozenset[int]:
        return self.round.reviewed


@dataclass
class Prediction:
    """What a finished engine job hands back to the GUI thread."""

    labels: Volume
    model: AdaptedModel
    classes: list[SegmentClass]
    plan: AdaptPlan | None = None

    @property
    def warnings(self) -> list[str]:
        """What the user must be told about this result (classes a saved model did not find, a forced modality)."""
        return list(self.labels.metadata.get(engine.WARNINGS, []))

    def segments(self) -> list[Segment]:
        """The output segments (one per class, empty ones included so they can be painted into)."""
        return segments_from_labels(self.labels, self.classes)

    def summary(self) -> str:
        if self.plan is None:
            said = f"applied a saved {self.model.backend_name} model"
            return "; ".join([said, *(f"warning: {w}" for w in self.warnings)])
        support = self.plan.support
        painted = ", ".join(f"{c.name}: {len(c.slices)} slices" for c in support.classes)
        scribbled = f", {len(support.partial_slices)} of them scribbled" if support.partial_slices else ""
        return f"{self.model.backend_name}; {painted}{scribbled}"


@dataclass
class FewShotSession:
    """What the annotation of one input volume along one axis has produced so far."""

    key: tuple[str, str] | None = None
    classes: list[SegmentClass] = field(default_factory=list)
    model: AdaptedModel | None = None
    #: The correction rounds of the input volume along the chosen axis (None before its first adaptation).
    rounds: Annotation | None = None
    backends: dict[str, Backend] = field(default_factory=dict)

    @property
    def shown(self) -> np.ndarray | None:
        """The prediction as last shown, ``[i, j, k]`` labels on the input grid; None when nothing can be re-adapted."""
        return self.rounds.shown if self.rounds else None

    @property
    def reviewed(self) -> set[int]:
        return self.rounds.reviewed if self.rounds else set()

    def backend(self, name: str) -> Backend:
        """One backend object per name, so that what it caches (slice embeddings) serves every round."""
        if name not in self.backends:
            self.backends[name] = get_backend(name)
        return self.backends[name]

    def select(self, volume_id: str, axis: str) -> None:
        """Another input volume or axis starts a new annotation: earlier corrections do not apply to it."""
        if self.key != (volume_id, axis):
            self.key = (volume_id, axis)
            self.classes, self.model, self.rounds = [], None, None

    def plan(
        self, image: Volume, axis: str, painted: Sequence[Segment], corrected: Sequence[Segment] | None = None
    ) -> AdaptPlan:
        """The support set from the painted segments, plus (re-adapting) the slices corrected in the output."""
        painted = [s for s in painted if np.any(s.mask)]
        if not painted:
            raise InputError("nothing painted: paint a few slices of each structure with Segment Editor")
        classes = classes_of(painted)
        labels = labels_from_segments(image, painted, classes)
        # a segment named "Background" holds scribbles' background strokes: support, never an output segment
        background = background_in({c.value: c.name for c in classes})
        classes = [c for c in classes if c.value != background]
        array_axis = image.slicing_axis(axis)
        if self.rounds is None or self.rounds.axis != array_axis:
            self.rounds = Annotation(array_axis)
        if corrected is None:
            return AdaptPlan(image, classes, self.rounds.next_round(labels))
        if self.shown is None:
            raise InputError("nothing to re-adapt: run 'Adapt and segment' first")
        if [c.segment_id for c in classes] != [c.segment_id for c in self.classes]:
            raise InputError("the painted segments changed since the last 'Adapt and segment': adapt again")
        gone = [c.name for c in self.classes if c.segment_id not in {s.segment_id for s in corrected}]
        if gone:
            raise InputError(f"segment {gone[0]!r} was removed from the output segmentation: adapt again")
        prediction = labels_from_segments(image, corrected, self.classes).array
        return AdaptPlan(image, classes, self.rounds.next_round(labels, prediction))

    def adapt_and_segment(self, plan: AdaptPlan, backend: str, device: str, task: Task) -> Prediction:
        """The engine's ``run`` (adapt, then segment the same volume); safe to call from a worker thread."""
        labels, model = engine.run(plan.image, plan.support, self.backend(backend), device, task)
        return Prediction(labels, model, plan.classes, plan)

    def record(self, prediction: Prediction) -> None:
        """Remember what is now shown in the output segmentation (call on the GUI thread once it is written)."""
        self.model = prediction.model
        self.classes = list(prediction.classes)
        if prediction.plan is None:  # a saved model applied: no painted support to re-adapt with
            self.rounds = None
            return
        if self.rounds is None:  # selection reset while the job ran: its result starts the new annotation
            self.rounds = Annotation(prediction.plan.support.axis)
        self.rounds.commit(prediction.labels.array, prediction.plan.round)

    def save_model(self, path: str | Path) -> Path:
        """Write the last adapted model to a file, to apply it to other volumes of the same kind."""
        engine.check_can_save(self.model)
        return engine.save_model(self.model, path)


def apply_model(
    path: str | Path,
    image: Volume,
    device: str,
    task: Task,
    backend_for: Callable[[str], Backend] = get_backend,
    force: bool = False,
) -> Prediction:
    """Segment ``image`` with a model file saved earlier (on this or another volume); safe in a worker thread.
    ``backend_for``: the session's backends by name, so that their caches serve the model. A model of another
    modality is refused (an input error) unless ``force``; warnings ride in :attr:`Prediction.warnings`."""
    model = engine.load_model(path, backend_for)
    labels = engine.apply_model(model, image, device=device, progress=task, force=force)
    classes = [
        SegmentClass(value, f"fewshot_{value}", name, class_color(value))
        for value, name in sorted(model.class_names.items())
    ]
    return Prediction(labels, model, classes)
