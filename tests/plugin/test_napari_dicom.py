"""A DICOM series in napari, its segmentation out as a DICOM SEG through the widget's Export (the plugin path)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from qtpy.QtCore import Qt  # noqa: E402

from napari_fewshot3d.volume_io import read_image, read_labels  # noqa: E402

from ..conftest import data_path  # noqa: E402
from .conftest import layer_volume, open_image, paint, wait_idle  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.slow]

BONE = 1


def test_export_of_a_dicom_series_offers_and_writes_a_dicom_seg(qtbot, make_widget, fake_backends, tmp_path):
    pydicom = pytest.importorskip("pydicom")
    series = data_path("ct_dicom_series")
    image = read_image(series)
    viewer, widget = make_widget()
    widget.backend_combo.setCurrentText("range-test")
    open_image(viewer, series)
    support_layer = widget.new_support_layer()
    painted = np.zeros(image.shape, np.uint8)
    for k in (5, 14):  # bone painted on two slices, as a user would threshold it there
        painted[:, :, k][image.array[:, :, k] > 400] = BONE
    paint(support_layer, image.with_array(painted))
    widget.classes_edit.setText("1=bone")
    wait_idle(qtbot, widget)
    qtbot.mouseClick(widget.adapt_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, widget)
    assert widget.prediction_layer is not None, widget.jobs.last_message
    shown = layer_volume(widget.prediction_layer).array.copy()
    assert shown.any()

    asked = {}

    def dialog(title, suggestion, filters):
        asked.update(suggestion=suggestion, filters=filters)
        return str(tmp_path / suggestion)

    widget._ask_save_path = dialog
    written = widget.export()
    wait_idle(qtbot, widget)
    assert asked["suggestion"].endswith(".dcm") and asked["filters"].startswith("DICOM SEG (*.dcm)")
    assert written is not None and written.is_file(), widget.jobs.last_message

    seg = pydicom.dcmread(written)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    assert seg.SegmentSequence[0].SegmentLabel == "bone"
    source_uids = set(image.metadata["dicom"]["sop_instance_uids"])
    instances = [i for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence]
    referenced = {i.ReferencedSOPInstanceUID for i in instances}
    assert referenced == source_uids
    back = read_labels(written, reference=image)
    np.testing.assert_array_equal(back.array, (shown > 0).astype(back.array.dtype))


def test_export_of_a_nifti_image_does_not_offer_dicom_and_refuses_dcm(qtbot, make_widget, fake_backends, tmp_path):
    folder = data_path("ct_abdomen")
    image = read_image(folder / "image.nii.gz")
    viewer, widget = make_widget()
    widget.backend_combo.setCurrentText("range-test")
    open_image(viewer, folder / "image.nii.gz")
    support_layer = widget.new_support_layer()
    painted = np.zeros(image.shape, np.uint8)
    painted[:, :, 60][image.array[:, :, 60] > 400] = BONE
    paint(support_layer, image.with_array(painted))
    wait_idle(qtbot, widget)
    qtbot.mouseClick(widget.adapt_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, widget)
    assert widget.prediction_layer is not None, widget.jobs.last_message
    asked = {}
    widget._ask_save_path = lambda title, suggestion, filters: asked.update(filters=filters) or ""
    assert widget.export() is None and "DICOM" not in asked["filters"]
    assert widget.export(tmp_path / "liver.dcm") is None
    assert "DICOM" in widget.jobs.last_message and not (tmp_path / "liver.dcm").exists()
