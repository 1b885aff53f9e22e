"""Load model and apply, through the plugin path, with a model of another modality: a CT spleen model (committed,
format 2) on a slab of the shared MR. The user is asked; "No" applies nothing, "Yes" applies it with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("napari")

from qtpy.QtWidgets import QMessageBox  # noqa: E402

from napari_fewshot3d.backends.selfprompt.cache import CACHE_ENV  # noqa: E402
from napari_fewshot3d.plugin import widget_files  # noqa: E402
from napari_fewshot3d.volume_io import write_image  # noqa: E402

from ..conftest import case_slab  # noqa: E402
from .conftest import needs_litemedsam, open_image, wait_idle  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.slow, needs_litemedsam]  # "Yes" encodes 4 MR slices

CT_MODEL = Path(__file__).resolve().parents[1] / "data" / "selfprompt_spleen_v2.fs3d"


def mr_slab(folder: Path) -> Path:
    return write_image(case_slab("mr_abdomen", 8, 12)[0], folder / "mr_slab.nii.gz")


def answering(monkeypatch, answer) -> list[str]:
    """QMessageBox.question answered ``answer``; returns the questions asked."""
    asked: list[str] = []

    def question(parent, title, text, *args):
        asked.append(text)
        return answer

    monkeypatch.setattr(widget_files.QMessageBox, "question", question)
    return asked


def test_a_ct_model_on_mr_is_applied_only_when_the_user_says_apply_anyway(qtbot, make_widget, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "embeddings"))
    viewer, widget = make_widget()
    open_image(viewer, mr_slab(tmp_path))
    count = len(viewer.layers)

    asked = answering(monkeypatch, QMessageBox.StandardButton.No)
    widget.load_model_and_apply(CT_MODEL)
    wait_idle(qtbot, widget)
    assert len(asked) == 1 and asked[0].startswith("The model was adapted on CT and this volume looks like MR")
    assert "unreliable" in asked[0]
    assert widget.jobs.last_message.startswith("Not applied: the model was adapted on CT")
    assert widget.status_label.text() == widget.jobs.last_message
    assert widget.prediction_layer is None and len(viewer.layers) == count  # nothing shown, nothing changed

    asked = answering(monkeypatch, QMessageBox.StandardButton.Yes)
    widget.load_model_and_apply(CT_MODEL)
    wait_idle(qtbot, widget, seconds=600)
    assert len(asked) == 1
    assert widget.prediction_layer is not None, widget.jobs.last_message
    assert widget.prediction_layer.data.shape == viewer.layers[count - 1].data.shape
    status = widget.status_label.text()
    assert status.startswith("Applied selfprompt_spleen_v2.fs3d")
    assert "Warning: forced: the model was adapted on CT" in status
