"""The napari dock widget: pick an image and a support layer, adapt, correct, re-adapt, accept, export.

It only converts layers to engine volumes (``_layer_io``), keeps the annotation state (``_session``)
and calls the engine verbs in worker threads (``_jobs``); no segmentation logic lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import engine
from ._jobs import EMBED, JobRunner, describe_error
from ._layer_io import class_info, layer_to_volume
from ._reader import labels_layer_data
from ._session import Session, format_class_names, parse_class_names
from ._widget_files import FileActions
from .backends import DEFAULT_BACKEND, Backend, available_backends, get_backend
from .errors import InputError
from .volume import Volume

if TYPE_CHECKING:
    import napari

_NO_LAYER = "(none)"


class FewShotWidget(FileActions, QWidget):
    """Few-shot 3D segmentation of the chosen image from a few painted slices."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.jobs = JobRunner(self)
        self.session: Session | None = None
        self._session_key: tuple[int, str] | None = None
        self._backends: dict[str, Backend] = {}
        self.prediction_layer: Any = None
        self.accepted_layer: Any = None
        self._build()
        self.jobs.progressed.connect(self._on_progress)
        self.jobs.busy_changed.connect(self._on_busy)
        self.jobs.failed.connect(self._say)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self.reset_choices)
        self.reset_choices()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.image_combo, self.support_combo = QComboBox(), QComboBox()
        self.new_support_button = QPushButton("New support layer")
        self.backend_combo, self.device_combo, self.axis_combo = QComboBox(), QComboBox(), QComboBox()
        self.backend_combo.addItems(available_backends())
        self.backend_combo.setCurrentText(DEFAULT_BACKEND)
        self.device_combo.addItems(list(engine.DEVICES))
        self.axis_combo.addItems(["axial", "coronal", "sagittal"])
        self.classes_edit = QLineEdit()
        self.classes_edit.setPlaceholderText("1=liver, 2=spleen")
        self.classes_edit.setToolTip("Name of each label value you paint; unnamed values are called class_N")

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Support labels", self.support_combo)
        form.addRow("", self.new_support_button)
        form.addRow("Classes", self.classes_edit)
        form.addRow("Backend", self.backend_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("Painted axis", self.axis_combo)

        self.adapt_button = QPushButton("Adapt and segment")
        self.readapt_button = QPushButton("Re-adapt")
        self.readapt_button.setToolTip("Use the support layer plus every slice you corrected in the prediction")
        self.accept_button = QPushButton("Accept")
        self.export_button = QPushButton("Export…")
        self.save_model_button = QPushButton("Save model…")
        self.load_model_button = QPushButton("Load model and apply…")
        buttons = QGridLayout()
        for n, button in enumerate(
            (
                self.adapt_button,
                self.readapt_button,
                self.accept_button,
                self.export_button,
                self.save_model_button,
                self.load_model_button,
            )
        ):
            buttons.addWidget(button, n // 2, n % 2)

        self.status_label = QLabel("Choose an image, paint a few slices in a support layer, then adapt.")
        self.status_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status_label)
        layout.addLayout(progress_row)
        layout.addStretch(1)

        self.new_support_button.clicked.connect(self.new_support_layer)
        self.adapt_button.clicked.connect(self.adapt_and_segment)
        self.readapt_button.clicked.connect(self.readapt)
        self.accept_button.clicked.connect(self.accept)
        self.export_button.clicked.connect(lambda: self.export())
        self.save_model_button.clicked.connect(lambda: self.save_model())
        self.load_model_button.clicked.connect(lambda: self.load_model_and_apply())
        self.cancel_button.clicked.connect(self.jobs.cancel)
        self.image_combo.currentTextChanged.connect(self._on_inputs_changed)
        self.support_combo.currentTextChanged.connect(self._on_support_changed)
        self.backend_combo.currentTextChanged.connect(self._on_inputs_changed)
        self.axis_combo.currentTextChanged.connect(self._on_inputs_changed)
        self.device_combo.currentTextChanged.connect(self._on_inputs_changed)

    # ------------------------------------------------------------------ layer choices

    def reset_choices(self, event: Any = None) -> None:
        """Refill the layer pickers (napari calls this when layers are added or removed)."""
        import napari

        images = [layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)]
        ours = {id(self.prediction_layer), id(self.accepted_layer)}
        labels = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, napari.layers.Labels) and id(layer) not in ours
        ]
        for combo, names in ((self.image_combo, images), (self.support_combo, labels)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names or [_NO_LAYER])
            combo.setCurrentText(current if current in names else (names[0] if names else _NO_LAYER))
            combo.blockSignals(False)
            if combo.currentText() != current:
                combo.currentTextChanged.emit(combo.currentText())

    def _shown(self, layer: Any) -> bool:
        """Whether one of our layers is still in the viewer (the user may have deleted it)."""
        return layer is not None and any(lay is layer for lay in self.viewer.layers)

    def _layer(self, name: str) -> Any:
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def image_layer(self) -> Any:
        layer = self._layer(self.image_combo.currentText())
        if layer is None:
            raise InputError("no image: open a volume (File > Open) and choose it as Image")
        return layer

    def support_layer(self) -> Any:
        layer = self._layer(self.support_combo.currentText())
        if layer is None:
            raise InputError("no support layer: press 'New support layer' and paint a few slices in it")
        return layer

    def image_volume(self) -> Volume:
        volume = layer_to_volume(self.image_layer())
        if volume.array.ndim != 3:
            raise InputError("the image is not a 3D volume")
        return volume

    def backend(self) -> Backend:
        name = self.backend_combo.currentText()
        if name not in self._backends:
            self._backends[name] = get_backend(name)
        return self._backends[name]

    def _current_session(self, image: Volume) -> Session:
        """The session of the chosen image and axis; a new image or axis starts afresh."""
        key = (id(self.image_layer()), self.axis_combo.currentText())
        if self.session is None or self._session_key != key:
            self.session = Session(image, image.slicing_axis(self.axis_combo.currentText()))
            self._session_key = key
        self.session.image = image
        return self.session

    # ------------------------------------------------------------------ reactions

    def _on_inputs_changed(self, _: str = "") -> None:
        """A new image, backend, axis or device: start computing the slice embeddings while the user paints."""
        if self.jobs.job is not None and self.jobs.job.kind != EMBED:
            return
        self.jobs.drop_background()
        try:
            image = self.image_volume()
            backend = self.backend()
            axis = self.axis_combo.currentText()
        except InputError:
            return
        if type(backend).embed is Backend.embed:  # nothing to precompute for this backend
            return
        device = self.device_combo.currentText()
        self.jobs.start(
            EMBED,
            lambda task: engine.embed(image, backend, device, task, axis=axis),
            lambda _: self._say("Slice embeddings ready: adapting will be quick."),
        )

    def _on_support_changed(self, _: str = "") -> None:
        layer = self._layer(self.support_combo.currentText())
        if layer is None or self.classes_edit.text().strip():
            return
        names, _colors = class_info(layer.metadata)
        if names:
            self.classes_edit.setText(format_class_names(names))

    def _on_progress(self, fraction: float, message: str) -> None:
        if fraction >= 0:
            self.progress_bar.setValue(round(1000 * fraction))
        if message:
            self.status_label.setText(message)

    def _on_busy(self, busy: bool, kind: str, outcome: str) -> None:
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.progress_bar.setValue(0)
        if outcome == "superseded":
            self._say("Ready: paint a few slices in the support layer, then adapt.")

    def _say(self, message: str) -> None:
        self.status_label.setText(message)

    def _fail(self, exc: BaseException) -> None:
        self.jobs.say_error(describe_error(exc))

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def event(self, event: QEvent) -> bool:
        """Closing the dock takes the widget out of the window: stop any work whose result nobody would see."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None and self.jobs.job is not None:
            self.jobs.cancel()
        return super().event(event)

    # ------------------------------------------------------------------ actions

    def new_support_layer(self) -> Any:
        """An empty labels layer on the image's grid (same scale, position and geometry) to paint in."""
        try:
            image_layer = self.image_layer()
            image = self.image_volume()
        except InputError as exc:
            return self._fail(exc)
        empty = image.with_array(np.zeros(image.shape, np.uint8), name=f"{image_layer.name} support")
        empty.metadata = {}
        data, kwargs, _ = labels_layer_data(empty, name=f"{image_layer.name} support")
        layer = self.viewer.add_labels(data, **kwargs)
        self.support_combo.setCurrentText(layer.name)
        layer.mode = "paint"
        try:
            layer.selected_label = min(parse_class_names(self.classes_edit.text()), default=1)
        except InputError:
            layer.selected_label = 1
        self.viewer.layers.selection.active = layer
        return layer

    def adapt_and_segment(self) -> None:
        """Adapt to the support layer alone and show the prediction in its own layer."""
        self._adapt(readapt=False)

    def readapt(self) -> None:
        """Adapt again on the support layer plus the slices corrected in the prediction layer."""
        self._adapt(readapt=True)

    def _adapt(self, readapt: bool) -> None:
        try:
            image_layer = self.image_layer()
            image = self.image_volume()
            support_layer = self.support_layer()
            support = layer_to_volume(support_layer, like=image_layer)
            support = support.with_array(np.array(support.array, copy=True))  # painting may go on meanwhile
            session = self._current_session(image)
            session.class_names = parse_class_names(self.classes_edit.text())
            prediction = None
            if readapt:
                if not self._shown(self.prediction_layer):
                    raise InputError("nothing to re-adapt: run 'Adapt and segment' first")
                prediction = np.array(layer_to_volume(self.prediction_layer).array, copy=True)
            backend, device = self.backend(), self.device_combo.currentText()
        except InputError as exc:
            return self._fail(exc)

        def work(task: Any) -> tuple[Volume, Any, Any]:
            support_set = session.support_set(support, prediction)
            support_set.require_slices_per_class(backend.min_slices_per_class, backend.name)
            result, model = engine.run(image, support_set, backend, device, task)
            return result, model, support_set

        def done(outcome: tuple[Volume, Any, Any]) -> None:
            result, model, support_set = outcome
            self._show_prediction(result, support_set.class_names, support_set.class_colors)
            session.record(result, model, fresh=not readapt)
            painted = ", ".join(f"{c.name}: {len(c.slices)} slices" for c in support_set.classes)
            self._say(f"Prediction ready ({backend.name}; {painted}). Correct slices in it, then Re-adapt or Accept.")

        self.jobs.start("re-adapt" if readapt else "adapt and segment", work, done)

    def _show_prediction(self, result: Volume, names: dict[int, str], colors: dict[int, list[float]]) -> None:
        result.metadata["class_names"] = dict(names)
        result.metadata["class_colors"] = dict(colors)
        name = f"{self.image_combo.currentText()} prediction"
        data, kwargs, _ = labels_layer_data(result, name=name)
        layer = self.prediction_layer
        if self._shown(layer) and layer.data.shape == data.shape:
            layer.metadata = kwargs["metadata"]
            layer.data = data
            layer.refresh()
        else:
            kwargs["opacity"] = 0.5
            self.prediction_layer = self.viewer.add_labels(data, **kwargs)
            self.reset_choices()
        if names:  # a correction painted with the brush's default label 1 would add a class nobody asked for
            self.prediction_layer.selected_label = min(names)

    def accept(self) -> Any:
        """Copy the prediction (with the user's corrections) into the final labels layer."""
        if not self._shown(self.prediction_layer):
            return self._fail(InputError("nothing to accept: run 'Adapt and segment' first"))
        source = self.prediction_layer
        name = f"{self.image_combo.currentText()} segmentation"
        data = np.array(source.data, copy=True)
        if self._shown(self.accepted_layer):
            self.accepted_layer.data = data
            self.accepted_layer.metadata = dict(source.metadata)
        else:
            self.accepted_layer = self.viewer.add_labels(
                data, name=name, scale=source.scale, translate=source.translate, metadata=dict(source.metadata)
            )
            self.accepted_layer.colormap = source.colormap
            self.reset_choices()
        self._say(f"Accepted into {self.accepted_layer.name!r}. Export it to a file with 'Export…'.")
        return self.accepted_layer
