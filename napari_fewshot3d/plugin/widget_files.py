"""The dock widget's file actions: export labels, save the adapted model, load a model and apply it.

Writing a large segmentation or reading a model takes seconds, so each runs as a job in a worker
thread like adapting does; the GUI only asks for the path and shows the outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog, QMessageBox

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

    def load_model_and_apply(self, path: str | Path | None = None, force: bool = False) -> None:
        """Segment the chosen image with a model saved earlier (on this or another volume). A model of another
        modality is not applied unless the user, asked, applies it anyway (or ``force``); classes it could not find
        are said in the status line and a notification."""
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

        def work(task: Any) -> tuple[Any, Volume | str]:
            model = engine.load_model(path, self.backend_named)
            refusal = None if force else model.check_volume(image)
            if refusal is not None:  # asked on the GUI thread, before any encoding
                return model, refusal
            return model, engine.apply_model(model, image, device=device, progress=task, force=force)

        def done(outcome: tuple[Any, Volume | str]) -> None:
            model, result = outcome
            if isinstance(result, str):  # asked once this job has ended: "Yes" starts the forced one
                self.jobs.then(lambda: self._ask_to_apply_anyway(path, result))
                return
            self._show_prediction(image_layer, result, model.class_names, {})
            session.record(result, model, None)
            warnings = result.metadata.get(engine.WARNINGS, [])
            said = f"Applied {Path(path).name} ({model.backend_name}). Correct slices in it, then Accept."
            if warnings:
                self.jobs.say_info("Warning: " + " ".join(warnings))
                said += " Warning: " + " ".join(warnings)
            self._say(said)

        self.jobs.start("apply model", work, done)

    def _ask_to_apply_anyway(self, path: str | Path, refusal: str) -> None:
        """Ask whether to apply a model whose result would be unreliable (No is the default)."""
        answer = QMessageBox.question(
            self,
            "Apply a model of another modality?",
            f"{refusal[0].upper()}{refusal[1:]}.\n\nApply it anyway? The result will be unreliable.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.load_model_and_apply(path, force=True)
        else:
            self.jobs.say_error(f"Not applied: {refusal}.")

    def _done_writing(self, verb: str, written: Path) -> None:
        """A toast with the file's name (a long path would be cut off there); the full path in the panel."""
        self.jobs.say_info(f"{verb} {Path(written).name}")
        self._say(f"{verb[:1].upper()}{verb[1:]} {written}")

    def _ask_save_path(self, title: str, suggestion: str, filters: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, suggestion, filters)
        return path
