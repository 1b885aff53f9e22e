"""The learned backend through the widget on a small real CT slab: embeddings start in the background as soon as
the image and backend are chosen, and adapting on two painted slices finds the spleen."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_fewshot3d.backends.selfprompt.cache import CACHE_ENV  # noqa: E402
from napari_fewshot3d.bench.protocol import paint_slices  # noqa: E402
from napari_fewshot3d.masks import dice  # noqa: E402
from napari_fewshot3d.plugin.jobs import EMBED  # noqa: E402
from napari_fewshot3d.volume import Volume  # noqa: E402
from napari_fewshot3d.volume_io import read_image, write_image  # noqa: E402

from .conftest import layer_volume, needs_litemedsam, only, open_image, paint, reference, wait_idle  # noqa: E402

pytestmark = [
    pytest.mark.gui,
    pytest.mark.slow,
    needs_litemedsam,
]

SPLEEN = 1
SLICES = 12


def test_selfprompt_sam_segments_the_spleen_on_a_slab(qtbot, make_widget, ct_case, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "embeddings"))
    image, ref = read_image(ct_case["image"]), reference(ct_case)
    present = np.flatnonzero((ref.array == SPLEEN).any(axis=(0, 1)))
    start = int((present[0] + present[-1]) // 2 - SLICES // 2)
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, 2] * start
    keep = slice(start, start + SLICES)
    slab = Volume(image.array[:, :, keep].copy(), affine, "slab")
    truth = slab.with_array(only(ref.array[:, :, keep], SPLEEN))
    write_image(slab, tmp_path / "slab.nii.gz")

    viewer, widget = make_widget()
    open_image(viewer, tmp_path / "slab.nii.gz")
    widget.backend_combo.setCurrentText("selfprompt-sam")
    assert widget.jobs.job is not None and widget.jobs.job.kind == EMBED  # started on choosing, in the background
    wait_idle(qtbot, widget, seconds=600)
    assert widget.progress_bar.text() == "slice embeddings ready", widget.jobs.last_message  # the bar, not the status

    support_layer = widget.new_support_layer()
    paint(support_layer, truth.with_array(paint_slices(truth.array, [SPLEEN], 2, k=2)))
    widget.classes_edit.setText("1=spleen")
    widget.adapt_and_segment()
    wait_idle(qtbot, widget, seconds=600)
    assert widget.prediction_layer is not None, widget.jobs.last_message
    score = dice(layer_volume(widget.prediction_layer).array == SPLEEN, truth.array == SPLEEN)
    assert score > 0.7, score


def test_choosing_another_backend_stops_the_background_embedding(qtbot, make_widget, ct_case, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "embeddings"))
    viewer, widget = make_widget()
    widget.backend_combo.setCurrentText("selfprompt-sam")
    open_image(viewer, ct_case["image"])
    assert widget.jobs.job is not None and widget.jobs.job.kind == EMBED
    qtbot.waitUntil(lambda: widget.progress_bar.value() > 0, timeout=120_000)  # slices are being encoded
    started = time.perf_counter()
    widget.backend_combo.setCurrentText("interpolate")
    wait_idle(qtbot, widget, seconds=30)
    assert time.perf_counter() - started < 30
    assert "cancelled" not in widget.jobs.last_message  # superseded quietly, not a user's cancel
    assert widget.status_label.text().startswith("Choose an image")  # the status line is not the background's
    assert widget.progress_bar.text() == "idle" and widget.progress_bar.value() == 0
