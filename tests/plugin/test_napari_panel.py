"""The panel as a user meets it from the Plugins menu: layers renamed, reordered or deleted, two images with the
same file name, buttons that are enabled only when they can act, a status line that keeps the last result, and a
readable 3D view. Quick backends (tests/plugin/_fake_backends.py) keep these fast; the real ones are in
test_napari_user_path.py and test_napari_widget.py."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from qtpy.QtWidgets import QFileDialog  # noqa: E402

from napari_fewshot3d.bench.protocol import paint_slices  # noqa: E402
from napari_fewshot3d.plugin.view3d import CT_3D_WINDOW, OBLIQUE  # noqa: E402

from .conftest import LIVER, only, open_image, paint, reference, wait_idle  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture
def embed_backend(monkeypatch) -> None:
    from napari_fewshot3d import backends

    monkeypatch.setitem(backends._REGISTRY, "embed-test", "tests.plugin._fake_backends:EmbeddingRangeBackend")
    monkeypatch.setitem(backends._REGISTRY, "range-test", "tests.plugin._fake_backends:RangeBackend")


def painted_case(qtbot, make_widget, ct_case, backend: str = "range-test", show: bool = False):
    viewer, widget = make_widget(show=show)
    widget.backend_combo.setCurrentText(backend)
    image_layer = open_image(viewer, ct_case["image"])
    support = widget.new_support_layer()
    ref = reference(ct_case)
    paint(support, ref.with_array(paint_slices(only(ref.array, LIVER), [LIVER], 2, k=3)))
    widget.classes_edit.setText("5=liver")
    wait_idle(qtbot, widget)
    return viewer, widget, image_layer, support


def combo_items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_renamed_reordered_and_deleted_layers(qtbot, make_widget, ct_case, embed_backend):
    viewer, widget, image_layer, support = painted_case(qtbot, make_widget, ct_case)
    image_layer.name, support.name = "patient 7", "my strokes"  # the user renames both
    viewer.layers.move(viewer.layers.index(support), 0)  # and reorders
    assert widget.image_combo.currentText() == "patient 7" and widget.support_combo.currentText() == "my strokes"
    widget.adapt_and_segment()
    wait_idle(qtbot, widget)
    prediction = widget.prediction_layer
    assert prediction is not None, widget.jobs.last_message
    assert prediction.name == "patient 7 prediction"
    assert combo_items(widget.support_combo) == ["my strokes"]  # the prediction is not offered as support

    prediction.name = "edited"
    widget.accept()
    assert widget.accepted_layer is not None
    assert combo_items(widget.support_combo) == ["my strokes"]  # nor the accepted segmentation

    viewer.layers.remove(prediction)
    assert not widget.readapt_button.isEnabled()
    widget.readapt()
    assert "prediction layer was deleted" in widget.jobs.last_message
    viewer.layers.remove(support)
    assert widget.support_combo.currentText() == "(none)" and not widget.adapt_button.isEnabled()
    widget.adapt_and_segment()
    assert "no support layer" in widget.jobs.last_message
    assert widget.export_button.isEnabled()  # the accepted segmentation is still there to export


def test_two_images_with_the_same_file_name_keep_their_own_layers(qtbot, make_widget, ct_case, tmp_path, embed_backend):
    viewer, widget, first, support = painted_case(qtbot, make_widget, ct_case)
    widget.adapt_and_segment()
    wait_idle(qtbot, widget)
    first_prediction = widget.prediction_layer
    second = open_image(viewer, ct_case["image"])  # the same file name: napari names it apart
    assert second.name != first.name
    widget.image_combo.setCurrentText(second.name)
    assert widget.prediction_layer is None and widget.session is None  # a new image starts afresh
    second_support = widget.new_support_layer()
    assert second_support.name == f"{second.name} support"
    second_support.data[...] = support.data  # the same grid: the same strokes
    second_support.refresh()
    widget.support_combo.setCurrentText(second_support.name)
    widget.adapt_and_segment()
    wait_idle(qtbot, widget)
    assert widget.prediction_layer.name == f"{second.name} prediction"
    assert widget.prediction_layer.unique_id != first_prediction.unique_id
    widget.image_combo.setCurrentText(first.name)
    assert widget.prediction_layer.unique_id == first_prediction.unique_id  # back to the first image's own


def test_buttons_progress_and_status(qtbot, make_widget, ct_case, embed_backend, monkeypatch):
    viewer, widget = make_widget()
    for button in (widget.adapt_button, widget.readapt_button, widget.accept_button, widget.export_button):
        assert not button.isEnabled(), button.text()
    assert not widget.cancel_button.isEnabled() and not widget.new_support_button.isEnabled()

    def no_dialog(*args, **kwargs):
        raise AssertionError("asked for a model file with no image to apply it to")

    monkeypatch.setattr(QFileDialog, "getOpenFileName", no_dialog)
    widget.load_model_and_apply()
    assert "no image" in widget.jobs.last_message

    widget.backend_combo.setCurrentText("embed-test")
    open_image(viewer, ct_case["image"])
    assert widget.jobs.job is not None and widget.cancel_button.isEnabled()  # the background embedding
    assert widget.new_support_button.isEnabled()
    wait_idle(qtbot, widget)
    assert widget.progress_bar.value() == widget.progress_bar.maximum()
    assert widget.progress_bar.text() == "slice embeddings ready"

    support = widget.new_support_layer()
    ref = reference(ct_case)
    paint(support, ref.with_array(paint_slices(only(ref.array, LIVER), [LIVER], 2, k=3)))
    widget.adapt_and_segment()
    assert not widget.adapt_button.isEnabled() and not widget.load_model_button.isEnabled()
    wait_idle(qtbot, widget)
    assert widget.progress_bar.value() == widget.progress_bar.maximum()
    assert widget.progress_bar.text() == "adapt and segment: done"
    status = widget.status_label.text()
    assert status.startswith("Prediction ready")
    for button in (widget.readapt_button, widget.accept_button, widget.export_button, widget.save_model_button):
        assert button.isEnabled(), button.text()

    widget.axis_combo.setCurrentText("coronal")  # starts another background embedding
    assert widget.jobs.job is not None
    wait_idle(qtbot, widget)
    assert widget.status_label.text() == status  # the background work did not overwrite the user's result


def test_the_3d_view_shows_the_image_for_context_and_the_prediction(qtbot, make_widget, ct_case, embed_backend):
    viewer, widget, image_layer, support = painted_case(qtbot, make_widget, ct_case, show=True)  # drawn for real
    widget.adapt_and_segment()
    wait_idle(qtbot, widget)
    support.visible = False
    before = (image_layer.rendering, tuple(image_layer.contrast_limits))
    viewer.dims.ndisplay = 3
    assert image_layer.rendering == "attenuated_mip"
    assert tuple(image_layer.contrast_limits) == CT_3D_WINDOW
    camera = getattr(viewer, "scene", viewer).camera
    np.testing.assert_allclose(camera.angles, OBLIQUE, atol=1e-6)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    rgb = shot[..., :3].astype(int)
    white = np.mean(rgb.min(axis=-1) > 230)
    color = np.asarray(widget.prediction_layer.get_color(LIVER))[:3]
    hue = np.argmax(color)  # the liver's dominant channel; the CT is drawn in grey
    tinted = np.mean(rgb[..., hue] - np.delete(rgb, hue, axis=-1).min(axis=-1) > 40)
    assert white < 0.05, white  # not a white block
    assert tinted > 0.01, tinted  # the prediction is visible (shaded, in its class colour)
    viewer.dims.ndisplay = 2
    assert (image_layer.rendering, tuple(image_layer.contrast_limits)) == before


def test_background_embedding_is_told_the_slice_in_view(qtbot, make_widget, ct_case, embed_backend, monkeypatch):
    """The slice the embedding does first is the one on napari's slider, as an array index of the image (the CT is
    shown flipped: display step and array index differ), followed as the user scrolls."""
    from napari_fewshot3d.backends import get_backend

    asked: list = []
    backend_class = type(get_backend("embed-test"))
    plain = backend_class.embed

    def embed(self, volume, device, task, axis=2, focus=None):
        asked.append(focus)
        return plain(self, volume, device, task, axis, focus)

    monkeypatch.setattr(backend_class, "embed", embed)
    viewer, widget = make_widget()
    widget.backend_combo.setCurrentText("embed-test")
    image_layer = open_image(viewer, ct_case["image"])
    qtbot.waitUntil(lambda: bool(asked), timeout=30000)
    focus = asked[-1]
    ref = reference(ct_case)
    for index in (20, 75):
        marked = np.zeros(ref.shape, np.uint8)
        marked[:, :, index] = 1  # array slice ``index`` along the axial axis, drawn into a layer to find its step
        support = widget.new_support_layer()
        paint(support, ref.with_array(marked))
        step = int(np.flatnonzero(np.asarray(support.data).any(axis=(1, 2)))[0])
        viewer.dims.current_step = (step, *viewer.dims.current_step[1:])
        assert focus() == index, (index, step, focus())
        viewer.layers.remove(support)
    viewer.dims.ndisplay = 3
    assert focus() is None  # no single slice in view
    del image_layer
    wait_idle(qtbot, widget)
