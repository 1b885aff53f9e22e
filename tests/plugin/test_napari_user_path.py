"""The whole path a user walks, from the Plugins menu, with the default (learned) backend on a real CT slab:
open → New support layer → paint 3 slices → Adapt and segment → correct a slice → Re-adapt → Accept →
Export (.seg.nrrd and .nii.gz) → Save model → Load model and apply, checking results and messages at each step."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from qtpy.QtCore import Qt  # noqa: E402

from napari_fewshot3d.backends import DEFAULT_BACKEND  # noqa: E402
from napari_fewshot3d.backends.selfprompt.cache import CACHE_ENV  # noqa: E402
from napari_fewshot3d.bench.protocol import paint_slices  # noqa: E402
from napari_fewshot3d.masks import dice  # noqa: E402
from napari_fewshot3d.volume import Volume  # noqa: E402
from napari_fewshot3d.volume_io import read_image, read_labels, write_image  # noqa: E402

from .conftest import LIVER, layer_volume, needs_litemedsam, only, open_image, paint, reference, wait_idle  # noqa: E402

pytestmark = [
    pytest.mark.gui,
    pytest.mark.slow,
    needs_litemedsam,
]

#: Axial slices [FIRST, STOP) of ct_abdomen: the liver's middle, 28 slices (encoding them takes ~30 s here).
FIRST, STOP = 74, 102


def liver_slab(ct_case, folder) -> tuple[Volume, Volume]:
    image, ref = read_image(ct_case["image"]), reference(ct_case)
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, 2] * FIRST
    slab = Volume(image.array[:, :, FIRST:STOP].copy(), affine, "liver_slab")
    write_image(slab, folder / "liver_slab.nii.gz")
    return slab, slab.with_array(only(ref.array[:, :, FIRST:STOP], LIVER))


def click(qtbot, button) -> None:
    assert button.isEnabled(), f"{button.text()!r} is disabled"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def liver_dice(layer, truth: Volume) -> float:
    return dice(layer_volume(layer).array == LIVER, truth.array == LIVER)


def test_the_whole_user_path_from_the_plugin_menu(qtbot, make_widget, ct_case, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "embeddings"))
    slab, truth = liver_slab(ct_case, tmp_path)
    viewer, widget = make_widget()
    assert not widget.adapt_button.isEnabled() and not widget.load_model_button.isEnabled()  # no image yet

    image_layer = open_image(viewer, tmp_path / "liver_slab.nii.gz")
    assert widget.backend_combo.currentText() == DEFAULT_BACKEND == "hybrid"  # embeddings start in the background
    click(qtbot, widget.new_support_button)
    support_layer = viewer.layers[-1]
    assert support_layer.name == f"{image_layer.name} support"
    assert widget.support_combo.currentText() == support_layer.name
    paint(support_layer, truth.with_array(paint_slices(truth.array, [LIVER], 2, k=3)))
    painted = support_layer.data.copy()
    widget.classes_edit.setText("5=liver")
    assert not widget.readapt_button.isEnabled() and not widget.export_button.isEnabled()  # nothing to act on yet

    # Adapt and segment
    click(qtbot, widget.adapt_button)
    assert not widget.adapt_button.isEnabled() and widget.cancel_button.isEnabled()  # busy
    wait_idle(qtbot, widget, seconds=600)
    prediction = widget.prediction_layer
    assert prediction is not None, widget.jobs.last_message
    assert prediction.name == f"{image_layer.name} prediction"
    first = liver_dice(prediction, truth)
    assert first > 0.86, first  # engine.run on the same slab and slices: 0.912
    assert "Prediction ready" in widget.status_label.text()
    assert widget.progress_bar.value() == widget.progress_bar.maximum()  # the finished state, not 0 %
    assert [widget.support_combo.itemText(i) for i in range(widget.support_combo.count())] == [support_layer.name]
    for button in (widget.readapt_button, widget.accept_button, widget.export_button, widget.save_model_button):
        assert button.isEnabled(), button.text()
    assert not widget.cancel_button.isEnabled()

    # correct the worst unpainted slice in the prediction layer, then Re-adapt
    shown = layer_volume(prediction)  # a view: writing into it edits the layer, as the brush does
    errors = np.sum(shown.array != truth.array, axis=(0, 1))
    worst = int(np.argmax(errors))
    assert errors[worst] > 0
    shown.array[:, :, worst] = truth.array[:, :, worst]
    prediction.refresh()
    click(qtbot, widget.readapt_button)
    wait_idle(qtbot, widget, seconds=600)
    assert "1 corrected" in widget.status_label.text(), widget.jobs.last_message
    assert widget.prediction_layer.unique_id == prediction.unique_id  # updated in place, not a new layer
    assert worst in widget.session.reviewed
    np.testing.assert_array_equal(layer_volume(prediction).array[:, :, worst], truth.array[:, :, worst])
    readapted = liver_dice(prediction, truth)
    assert readapted > first - 0.01, (first, readapted)
    np.testing.assert_array_equal(support_layer.data, painted)  # the user's painting is never touched

    # Accept, then Export in both formats: same voxels, exactly the source geometry
    click(qtbot, widget.accept_button)
    accepted = widget.accepted_layer
    assert accepted is not None and accepted.name == f"{image_layer.name} segmentation"
    np.testing.assert_array_equal(accepted.data, prediction.data)
    for name in ("liver.seg.nrrd", "liver.nii.gz"):
        written = widget.export(tmp_path / name)
        wait_idle(qtbot, widget)
        assert widget.jobs.last_message == f"wrote {name}"  # the toast names the file
        again = read_labels(written)
        np.testing.assert_array_equal(again.array, layer_volume(accepted).array)
        np.testing.assert_allclose(again.affine, slab.affine, atol=1e-4)
        assert again.metadata.get("class_names", {LIVER: "liver"}) == {LIVER: "liver"}
    assert read_labels(tmp_path / "liver.seg.nrrd").metadata["class_names"] == {LIVER: "liver"}

    # Save the model, then Load and apply it: the prediction layer is updated, no new layer appears
    model_file = widget.save_model(tmp_path / "liver.fewshot3d.zip")
    wait_idle(qtbot, widget)
    assert model_file is not None and model_file.is_file(), widget.jobs.last_message
    assert widget.jobs.last_message == "saved model to liver.fewshot3d.zip"
    shown.array[...] = 0  # so that the applied result must come from the model
    prediction.refresh()
    count = len(viewer.layers)
    assert widget.load_model_button.isEnabled()
    widget.load_model_and_apply(model_file)  # the button's file dialog, answered
    wait_idle(qtbot, widget, seconds=600)
    assert widget.status_label.text().startswith("Applied liver.fewshot3d.zip"), widget.jobs.last_message
    assert len(viewer.layers) == count and widget.prediction_layer.unique_id == prediction.unique_id
    applied = liver_dice(prediction, truth)
    assert applied > 0.85, applied  # engine.segment with the reloaded model: 0.902
