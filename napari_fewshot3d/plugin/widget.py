"""The napari dock widget: pick an image and a support layer, adapt, correct, re-adapt, accept, export.

It only converts layers to engine volumes (``layer_io``), keeps the annotation state (``session``)
and calls the engine verbs in worker threads (``jobs``); no segmentation logic lives here. Layers are
remembered by napari's ``unique_id`` (``viewer_layers``): napari gives a plugin a proxy of the viewer,
across which object identity does not hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import (
    QApplication,
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

from .. import engine
from ..annotation import Round
from ..backends import DEFAULT_BACKEND, Backend, available_backends, get_backend
from ..errors import InputError
from ..volume import Volume
from .focus import SliceInView
from .jobs import EMBED, JobRunner, describe_error
from .layer_io import class_info, layer_to_volume
from .session import Session, format_class_names, parse_class_names
from .view3d import View3D
from .viewer_layers import ViewerLayers, layer_id
from .widget_files import FileActions
from .widget_results import ResultLayers
from .widget_support import SupportActions

if TYPE_CHECKING:
    import napari

_NO_LAYER = "(none)"
TITLE = "Few-shot 3D segmentation"
_PROGRESS_STEPS = 1000


class FewShotWidget(ResultLayers, FileActions, SupportActions, QWidget):
    """Few-shot 3D segmentation of the chosen image from a few painted slices."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.jobs = JobRunner(self)
        self.layers = ViewerLayers(napari_viewer, self.reset_choices)
        #: Annotation state per (image layer id, painted axis): switching images keeps each one's rounds.
        self._sessions: dict[tuple[str, str], Session] = {}
        #: The layers made for each image: (image layer id, role) -> layer id.
        self._made: dict[tuple[str, str], str] = {}
        self._backends: dict[str, Backend] = {}
        self._window: QWidget | None = None
        self.view3d = View3D(napari_viewer, self)
        self.slice_in_view = SliceInView(napari_viewer)
        self._build()
        self.jobs.progressed.connect(self._on_progress)
        self.jobs.busy_changed.connect(self._on_busy)
        self.jobs.failed.connect(self._say)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.jobs.shutdown)
        self.reset_choices()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.image_combo, self.support_combo = QComboBox(), QComboBox()
        self.new_support_button = QPushButton("New support layer")
        self.background_button = QPushButton("Paint background")
        self.background_button.setToolTip(
            "Scribbles: paint strokes of 'background' where no structure is, and a stroke inside each structure; "
            "on a slice holding background strokes only what you painted counts"
        )
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
        support_buttons = QHBoxLayout()
        support_buttons.addWidget(self.new_support_button)
        support_buttons.addWidget(self.background_button)
        form.addRow("", support_buttons)
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
        self.progress_bar.setRange(0, _PROGRESS_STEPS)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("idle")
        self.cancel_button = QPushButton("Cancel")
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status_label)
        layout.addLayout(progress_row)
        layout.addStretch(1)
        # wide enough that the dock's title (display name and plugin name) is not cut off
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance(f"{TITLE} (napari-fewshot3d)") + 140)

        self.new_support_button.clicked.connect(lambda: self.new_support_layer())
        self.background_button.clicked.connect(lambda: self.paint_background())
        self.adapt_button.clicked.connect(self.adapt_and_segment)
        self.readapt_button.clicked.connect(self.readapt)
        self.accept_button.clicked.connect(lambda: self.accept())
        self.export_button.clicked.connect(lambda: self.export())
        self.save_model_button.clicked.connect(lambda: self.save_model())
        self.load_model_button.clicked.connect(lambda: self.load_model_and_apply())
        self.cancel_button.clicked.connect(self.jobs.cancel)
        self.image_combo.currentIndexChanged.connect(self._on_inputs_changed)
        self.support_combo.currentIndexChanged.connect(self._on_support_changed)
        self.backend_combo.currentTextChanged.connect(self._on_inputs_changed)
        self.axis_combo.currentTextChanged.connect(self._on_inputs_changed)
        self.device_combo.currentTextChanged.connect(self._on_inputs_changed)

    # ------------------------------------------------------------------ layer choices

    def reset_choices(self, event: Any = None) -> None:
        """Refill the layer pickers after layers were added, removed, renamed or reordered."""
        for combo, layers in ((self.image_combo, self.layers.images()), (self.support_combo, self.layers.paintable())):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for layer in layers:
                combo.addItem(layer.name, layer_id(layer))
            if not layers:
                combo.addItem(_NO_LAYER, None)
            index = combo.findData(current) if current is not None else -1
            combo.setCurrentIndex(max(index, 0))
            combo.blockSignals(False)
            if combo.currentData() != current:
                combo.currentIndexChanged.emit(combo.currentIndex())
        self._update_buttons()

    def _chosen(self, combo: QComboBox) -> Any:
        return self.layers.find(combo.currentData())

    def image_layer(self) -> Any:
        layer = self._chosen(self.image_combo)
        if layer is None:
            raise InputError("no image: open a volume (File > Open) and choose it as Image")
        return layer

    def support_layer(self) -> Any:
        layer = self._chosen(self.support_combo)
        if layer is None:
            raise InputError("no support layer: press 'New support layer' and paint a few slices in it")
        return layer

    def image_volume(self) -> Volume:
        volume = layer_to_volume(self.image_layer())
        if volume.array.ndim != 3:
            raise InputError("the image is not a 3D volume")
        return volume

    def backend_named(self, name: str) -> Backend:
        """One backend object per name for this widget, so that what it loads and caches serves every round."""
        if name not in self._backends:
            self._backends[name] = get_backend(name)
        return self._backends[name]

    def backend(self) -> Backend:
        """The chosen backend."""
        return self.backend_named(self.backend_combo.currentText())

    @property
    def session(self) -> Session | None:
        """The annotation session of the chosen image and axis (None before its first adaptation)."""
        return self._sessions.get((self.image_combo.currentData(), self.axis_combo.currentText()))

    def _current_session(self, image: Volume) -> Session:
        """The session of the chosen image and axis; a new image or axis starts afresh."""
        key = (layer_id(self.image_layer()), self.axis_combo.currentText())
        if key not in self._sessions:
            self._sessions[key] = Session(image.slicing_axis(self.axis_combo.currentText()), image=image)
        session = self._sessions[key]
        session.image = image
        return session

    # ------------------------------------------------------------------ reactions

    def _on_inputs_changed(self, _: Any = None) -> None:
        """A new image, backend, axis or device: start computing the slice embeddings while the user paints."""
        self._update_buttons()
        if self.jobs.foreground:
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
        self.slice_in_view.watch(self.image_layer(), image, image.slicing_axis(axis))
        focus = self.slice_in_view
        self.jobs.start(
            EMBED,
            lambda task: engine.embed(image, backend, device, task, axis=axis, focus=focus),
            lambda _: None,  # the progress bar says so; the status line keeps the user's last result
        )

    def _on_support_changed(self, _: Any = None) -> None:
        self._update_buttons()
        layer = self._chosen(self.support_combo)
        if layer is None or self.classes_edit.text().strip():
            return
        names, _colors = class_info(layer.metadata)
        if names:
            self.classes_edit.setText(format_class_names(names))

    def _on_progress(self, fraction: float, message: str) -> None:
        job = self.jobs.job
        if fraction >= 0:
            self.progress_bar.setValue(round(_PROGRESS_STEPS * fraction))
        if job is not None and job.kind == EMBED:  # background work: the bar only, never the status line
            self.progress_bar.setFormat(f"{EMBED} %p%")
        elif message:
            self.progress_bar.setFormat(f"{job.kind if job else 'working'} %p%")
            self.status_label.setText(message)

    def _on_busy(self, busy: bool, kind: str, outcome: str) -> None:
        if not busy:
            finished = outcome == "done"
            self.progress_bar.setValue(_PROGRESS_STEPS if finished else 0)
            if kind == EMBED:
                self.progress_bar.setFormat("slice embeddings ready" if finished else "idle")
            else:
                self.progress_bar.setFormat(f"{kind}: {outcome}")
        self._update_buttons()

    def _update_buttons(self) -> None:
        """Each button is enabled only when its action can run now."""
        busy = self.jobs.foreground
        has_image = self._chosen(self.image_combo) is not None
        has_support = self._chosen(self.support_combo) is not None
        shown = self.prediction_layer is not None
        session = self.session
        model = session.model if session else None
        saveable = engine.can_save(model)
        self.new_support_button.setEnabled(has_image and not busy)
        self.adapt_button.setEnabled(has_image and has_support and not busy)
        self.readapt_button.setEnabled(shown and has_support and not busy)
        self.accept_button.setEnabled(shown and not busy)
        self.export_button.setEnabled((shown or self.accepted_layer is not None) and not busy)
        self.save_model_button.setEnabled(saveable and not busy)
        self.load_model_button.setEnabled(has_image and not busy)
        self.cancel_button.setEnabled(self.jobs.busy)

    def _say(self, message: str) -> None:
        self.status_label.setText(message)

    def _fail(self, exc: BaseException) -> None:
        self.jobs.say_error(describe_error(exc))

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def event(self, event: QEvent) -> bool:
        """Closing the dock takes the widget out of the window: stop any work whose result nobody would see.
        Docked, watch the main window: once it closes, the jobs shut down before its Qt objects go."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is None and self.jobs.job is not None:
                self.jobs.cancel()
            window = self.window()
            if window is not self and window is not self._window:
                if self._window is not None:
                    self._window.removeEventFilter(self)
                self._window = window
                window.installEventFilter(self)
        return super().event(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._window and event.type() == QEvent.Type.Close:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self._after_window_close)  # the close may still be refused (a confirm dialog)
        return False

    def _after_window_close(self) -> None:
        if self._window is not None and not self._window.isVisible():
            self.jobs.shutdown()

    # ------------------------------------------------------------------ actions

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
                prediction_layer = self.prediction_layer
                if prediction_layer is None:
                    deleted = session.shown is not None
                    raise InputError(
                        "the prediction layer was deleted: run 'Adapt and segment' again"
                        if deleted
                        else "nothing to re-adapt: run 'Adapt and segment' first"
                    )
                prediction = np.array(layer_to_volume(prediction_layer).array, copy=True)
            backend, device = self.backend(), self.device_combo.currentText()
        except InputError as exc:
            return self._fail(exc)

        def work(task: Any) -> tuple[Volume, Any, Round]:
            round_ = session.support_round(support, prediction)
            result, model = engine.run(image, round_.support, backend, device, task)
            return result, model, round_

        def done(outcome: tuple[Volume, Any, Round]) -> None:
            result, model, round_ = outcome
            support_set = round_.support
            self._show_prediction(image_layer, result, support_set.class_names, support_set.class_colors)
            session.record(result, model, round_)
            painted = ", ".join(f"{c.name}: {len(c.slices)} slices" for c in support_set.classes)
            if support_set.partial_slices:
                painted += f", {len(support_set.partial_slices)} of them scribbled"
            corrected = f", {len(round_.reviewed)} corrected" if round_.reviewed else ""
            self._say(
                f"Prediction ready ({backend.name}; {painted}{corrected}). Correct slices in it, then Re-adapt or "
                "Accept."
            )

        self.jobs.start("re-adapt" if readapt else "adapt and segment", work, done)
