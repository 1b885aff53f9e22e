"""The dock widget's file actions: export labels, save the adapted model, load a model and apply it.

Writing a large segmentation or reading a model takes seconds, so each runs as a job in a worker
thread like adapting does; the GUI only asks for the path and shows the outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog

from .. import engine
from ..dicom_series import DICOM_KEY
from ..errors import InputError
from ..volume import Volume
from ..volume_io import check_writable_for, write_labels
from .layer_io import class_info, layer_to_volume

LABEL_FILES = "Labels (*.seg.nrrd *.nii.gz *.nii *.nrrd)"
#: Offered first for a segmentation of an image read from a DICOM series.
DICOM_SEG_FILES = "DICOM SEG (*.dcm)"
MODEL_FILES = "Models (*.zip)"


class FileActions:
    """Mixed into the dock widget, which provides ``jobs``, ``session``, the layers and ``_fail``/``_say``."""

    def export(self, path: str | Path | None = None) -> Path | None:
        """Write the accepted segmentation (else the prediction) on the source grid and geometry.

        Returns the file being written (the job finishes in the background), or None if nothing starts.
        """
        shown = [lay for lay in (self.accepted_layer, self.prediction_layer) if lay is not None]
        if not shown:
            return self._fail(InputError("nothing to export: run 'Adapt and segment' first"))
        layer = shown[0]
        try:
            volume = layer_to_volume(layer)
        except InputError as exc:
            return self._fail(exc)
        if DICOM_KEY in volume.metadata:  # a DICOM series in: a DICOM SEG out, for its PACS
            suggestion, filters = f"{layer.name}.dcm", f"{DICOM_SEG_FILES};;{LABEL_FILES}"
        else:
            suggestion, filters = f"{layer.name}.seg.nrrd", LABEL_FILES
        path = path or self._ask_save_path("Export labels", suggestion, filters)
        if not path:
            return None
        try:
            check_writable_for(volume, path)  # before the worker: a bad path or format is said at once
            volume = volume.with_array(volume.array.copy())  # the user may go on editing meanwhile
            names, colors = class_info(layer.metadata)
        except InputError as exc:
            return self._fail(exc)
        started = self.jobs.start(
            "export",
            lambda task: write_labels(volume, path, names, colors),
            lambda written: self._done_writing("wrote", written),
        )
        return Path(path) if started else None

    def save_model(self, path: str | Path | None = None) -> Path | None:
        """Save the last adapted model, to apply it to other volumes of the same kind."""
        model = self.session.model if self.session else None
        try:
            engine.check_can_save(model)
        except InputError as exc:
            return self._fail(exc)
        path = path or self._ask_save_path("Save model", "model.fewshot3d.zip", MODEL_FILES)
        if not path:
            return None
        started = self.jobs.start(
            "save model",
            lambda task: engine.save_model(model, path),
            lambda written: self._done_writing("saved model to", written),
        )
        return Path(path) if started else None

    def load_model_and_apply(self, path: str | Path | None = None) -> None:
        """Segment the chosen image with a model saved earlier (on this or another volume)."""
        try:  # before asking for a file: without an image there is nothing to apply it to
            image_layer = self.image_layer()
            image = self.image_volume()
        except InputError as exc:
            return self._fail(exc)
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load model", "", f"{MODEL_FILES};;All files (*)")
            if not path:
                return
        session = self._current_session(image)
        device = self.device_combo.currentText()

        def work(task: Any) -> tuple[Any, Volume]:
            model = engine.load_model(path, self.backend_named)
            return model, engine.segment(model, image, device=device, progress=task)

        def done(outcome: tuple[Any, Volume]) -> None:
            model, result = outcome
            self._show_prediction(image_layer, result, model.class_names, {})
            session.record(result, model, None)
            self._say(f"Applied {Path(path).name} ({model.backend_name}). Correct slices in it, then Accept.")

        self.jobs.start("apply model", work, done)

    def _done_writing(self, verb: str, written: Path) -> None:
        """A toast with the file's name (a long path would be cut off there); the full path in the panel."""
        self.jobs.say_info(f"{verb} {Path(written).name}")
        self._say(f"{verb[:1].upper()}{verb[1:]} {written}")

    def _ask_save_path(self, title: str, suggestion: str, filters: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, suggestion, filters)
        return path
