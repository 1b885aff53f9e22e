"""The npe2 contributions as napari uses them: manifest, reader, writer, sample data, widget."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_fewshot3d.errors import InputError  # noqa: E402
from napari_fewshot3d.plugin.reader import get_reader  # noqa: E402
from napari_fewshot3d.plugin.widget import FewShotWidget  # noqa: E402
from napari_fewshot3d.plugin.writer import write_labels_layer  # noqa: E402
from napari_fewshot3d.volume_io import read_image, read_labels  # noqa: E402

from ..conftest import data_path  # noqa: E402
from .conftest import open_image  # noqa: E402

pytestmark = pytest.mark.gui


def test_manifest_declares_every_contribution():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-fewshot3d")
    contributions = manifest.contributions
    assert [r.command for r in contributions.readers] == ["napari-fewshot3d.get_reader"]
    assert {".nii.gz", ".seg.nrrd"} <= set(contributions.writers[0].filename_extensions)
    assert contributions.sample_data[0].key == "mni152"
    assert contributions.widgets[0].display_name == "Few-shot 3D segmentation"


def test_reader_claims_volumes_and_dicom_folders_only(tmp_path):
    assert get_reader(str(tmp_path / "ct.nii.gz")) is not None
    assert get_reader(str(tmp_path / "seg.seg.nrrd")) is not None
    assert get_reader(str(tmp_path / "photo.png")) is None
    assert get_reader(str(tmp_path)) is None  # an empty folder is no DICOM series
    assert get_reader(str(data_path("ct_dicom_series"))) is not None


def test_reader_sets_scale_from_spacing_and_keeps_geometry(make_napari_viewer, ct_case):
    viewer = make_napari_viewer()
    layer = open_image(viewer, ct_case["image"])
    volume = read_image(ct_case["image"])
    assert layer._type_string == "image"
    assert layer.data.shape == volume.shape[::-1]  # RAS file: axial slices (k) on the slider
    assert tuple(layer.scale) == pytest.approx(tuple(volume.spacing[::-1]))
    assert np.array_equal(layer.metadata["fewshot3d"]["affine"], volume.affine)
    assert viewer.dims.nsteps[0] == volume.shape[2]


def test_reader_reads_a_dicom_series_with_its_anisotropic_spacing(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = open_image(viewer, data_path("ct_dicom_series"))
    assert layer.data.shape[0] == 20  # 20 files = 20 axial slices on the slider
    assert tuple(layer.scale) == pytest.approx((2.0, 0.98, 0.98), abs=0.01)


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".seg.nrrd"])
def test_labels_read_then_saved_keep_values_and_geometry(make_napari_viewer, tmp_path, extension):
    """An LPS MR label map through napari and back: same voxels, same affine, in every format."""
    import napari

    source = data_path("mr_abdomen", "reference_labels.nii.gz")
    viewer = make_napari_viewer()
    layer = open_image(viewer, source)
    assert layer._type_string == "labels"
    out = tmp_path / f"saved{extension}"
    written = napari.save_layers(str(out), [layer], plugin="napari-fewshot3d")
    assert written == [str(out)]
    original, again = read_labels(source), read_labels(out)
    np.testing.assert_array_equal(again.array, original.array)
    np.testing.assert_allclose(again.affine, original.affine, atol=1e-4)


def test_writer_refuses_a_layer_without_geometry(tmp_path):
    with pytest.raises(InputError, match="no image geometry"):
        write_labels_layer(str(tmp_path / "x.nii.gz"), np.zeros((3, 4, 5), np.uint8), {"name": "x", "metadata": {}})
    assert not (tmp_path / "x.nii.gz").exists()


def test_sample_data_gives_the_brain_and_its_reference(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-fewshot3d", "mni152")
    assert [layer._type_string for layer in layers] == ["image", "labels"]
    image, labels = layers
    assert tuple(image.scale) == pytest.approx((2.0, 2.0, 2.0))
    assert set(np.unique(labels.data)) == {0, 1, 2}
    assert labels.metadata["fewshot3d"]["class_names"] == {1: "grey_matter", 2: "white_matter"}


def test_widget_docks_from_the_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-fewshot3d", "Few-shot 3D segmentation")
    assert isinstance(widget, FewShotWidget)


def test_a_slicer_segmentation_opens_with_its_names_and_colours(make_napari_viewer, blob_volume, tmp_path):
    """A .seg.nrrd (as the Slicer module or Export writes it) opens as Labels with its segments' names and
    colours, on its own geometry."""
    from napari_fewshot3d.plugin.layer_io import layer_to_volume
    from napari_fewshot3d.volume_io import write_labels

    _, labels = blob_volume
    colors = {1: [0.9, 0.1, 0.1], 2: [0.1, 0.2, 0.95]}
    path = write_labels(labels, tmp_path / "organs.seg.nrrd", {1: "liver", 2: "spleen"}, colors)
    viewer = make_napari_viewer()
    layer = open_image(viewer, path)
    assert layer._type_string == "labels"
    assert layer.metadata["fewshot3d"]["class_names"] == {1: "liver", 2: "spleen"}
    for value, rgb in colors.items():
        np.testing.assert_allclose(layer.get_color(value)[:3], rgb, atol=0.01)
    again = layer_to_volume(layer)
    np.testing.assert_array_equal(again.array, labels.array)
    np.testing.assert_allclose(again.affine, labels.affine, atol=1e-4)
