"""Volume <-> napari layer data: the display order, and an exact way back to the source grid (no napari needed)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d.errors import InputError
from napari_fewshot3d.plugin.layer_io import (
    META_KEY,
    data_to_volume,
    display_order,
    geometry_from_scale,
    labels_layer_kwargs,
    volume_to_layer_data,
)
from napari_fewshot3d.plugin.session import format_class_names, parse_class_names
from napari_fewshot3d.support import changed_slices, merge_reviewed
from napari_fewshot3d.volume import Volume

from ..conftest import oblique_affine


def ramp(shape=(5, 6, 7)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.int32).reshape(shape)


@pytest.mark.parametrize(
    "diagonal, expected_flips",
    [((1.0, 1.0, 1.0), [0, 1]), ((-1.0, -1.0, 1.0), []), ((-1.0, 1.0, -1.0), [1, 2])],
)
def test_display_is_superior_posterior_left(diagonal, expected_flips):
    """RAS and LPS files both show axial slices on the slider, anterior on top, patient's right on the left."""
    affine = np.diag([*diagonal, 1.0]) @ np.diag([0.8, 0.9, 2.5, 1.0])
    order, flips = display_order(affine)
    assert order == [2, 1, 0]
    assert flips == expected_flips


def test_permuted_storage_puts_axial_on_the_slider():
    """A volume stored (S, A, R) — axial slices along the first array axis — still slides through axial slices."""
    affine = np.zeros((4, 4))
    affine[2, 0], affine[1, 1], affine[0, 2], affine[3, 3] = 3.0, 2.0, 1.0, 1.0
    volume = Volume(ramp(), affine)
    data, kwargs = volume_to_layer_data(volume)
    assert data.shape == (5, 6, 7)
    assert kwargs["scale"] == (3.0, 2.0, 1.0)
    # anterior on top: the first row is the most anterior one (largest j)
    np.testing.assert_array_equal(data[:, 0, :], volume.array[:, -1, ::-1])


def test_round_trip_is_exact_on_an_oblique_grid():
    volume = Volume(ramp(), oblique_affine(), "oblique")
    data, kwargs = volume_to_layer_data(volume, contiguous=True)
    assert data.flags["C_CONTIGUOUS"]
    back = data_to_volume(data, kwargs["metadata"], "oblique")
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_array_equal(back.affine, volume.affine)
    assert kwargs["scale"] == pytest.approx(tuple(volume.spacing[[2, 1, 0]]))


def test_translate_puts_the_first_displayed_voxel_at_its_lps_position():
    affine = np.diag([2.0, 3.0, 4.0, 1.0])  # RAS
    affine[:3, 3] = (10.0, 20.0, 30.0)
    volume = Volume(ramp(), affine)
    _, kwargs = volume_to_layer_data(volume)
    # first displayed voxel: i and j flipped (RAS -> toward L, P), k as is; world (S, P, L) in mm
    corner_ras = affine @ np.array([4, 5, 0, 1.0])
    assert kwargs["translate"] == pytest.approx((corner_ras[2], -corner_ras[1], -corner_ras[0]))


def test_a_layer_without_our_geometry_reads_its_axes_as_superior_posterior_left():
    metadata = {META_KEY: geometry_from_scale((5, 6, 7), (2.0, 1.0, 0.5), (3.0, 4.0, 5.0))}
    volume = data_to_volume(ramp(), metadata, "plain")
    assert volume.shape == (7, 6, 5)
    assert volume.slicing_axis("axial") == 2
    np.testing.assert_allclose(volume.spacing, (0.5, 1.0, 2.0))
    np.testing.assert_allclose(volume.origin_lps, (5.0, 4.0, 3.0))
    again, kwargs = volume_to_layer_data(volume)
    np.testing.assert_array_equal(again, ramp())
    assert kwargs["translate"] == pytest.approx((3.0, 4.0, 5.0))


def test_wrong_shape_or_missing_geometry_is_refused():
    volume = Volume(ramp(), np.eye(4))
    _, kwargs = volume_to_layer_data(volume)
    with pytest.raises(InputError, match="shape"):
        data_to_volume(np.zeros((2, 2, 2)), kwargs["metadata"], "small")
    with pytest.raises(InputError, match="no image geometry"):
        data_to_volume(ramp(), {}, "plain")


def test_labels_kwargs_keep_names_and_colours_beside_the_geometry():
    _, kwargs = volume_to_layer_data(Volume(ramp(), np.eye(4)))
    labelled = labels_layer_kwargs(kwargs, {5: "liver"}, {5: [1.0, 0.0, 0.0]})
    assert labelled["metadata"][META_KEY]["class_names"] == {5: "liver"}
    assert labelled["colormap"][5] == (1.0, 0.0, 0.0, 1.0)
    assert labelled["colormap"][0][3] == 0.0
    assert "class_names" not in kwargs["metadata"][META_KEY]  # the image's own metadata is untouched


def test_class_names_text():
    assert parse_class_names("1=liver, 2 = spleen;3: left kidney") == {1: "liver", 2: "spleen", 3: "left kidney"}
    assert parse_class_names("  ") == {}
    assert format_class_names({2: "b", 1: "a"}) == "1=a, 2=b"
    with pytest.raises(InputError, match="1=liver"):
        parse_class_names("liver")
    with pytest.raises(InputError, match="background"):
        parse_class_names("0=air")


def test_corrected_slices_become_support_and_emptied_ones_say_nothing_here():
    shown = np.zeros((4, 4, 6), np.uint8)
    shown[1:3, 1:3, 1:5] = 1
    corrected = shown.copy()
    corrected[0, 0, 2] = 1  # slice 2: one voxel added
    corrected[:, :, 4] = 0  # slice 4: the user removed a false positive
    assert changed_slices(shown, corrected, axis=2) == {2, 4}
    support = Volume(np.zeros_like(shown), np.eye(4))
    support.array[1:3, 1:3, 1] = 1
    merged, empty = merge_reviewed(support, corrected, {2, 4}, axis=2)
    np.testing.assert_array_equal(merged.array[:, :, 2], corrected[:, :, 2])
    np.testing.assert_array_equal(merged.array[:, :, 1], support.array[:, :, 1])
    assert empty == [4]
    assert not support.array[:, :, 2].any()  # the support itself is never changed


def test_a_layer_painted_on_a_dicom_series_saves_as_a_seg_that_the_reader_opens(tmp_path):
    """The series' identity rides in the image layer's metadata, on to a labels layer made like it, to the writer."""
    import shutil

    from napari_fewshot3d.plugin.reader import get_reader
    from napari_fewshot3d.plugin.writer import write_labels_layer
    from napari_fewshot3d.volume_io import read_image

    from ..conftest import data_path

    shutil.copytree(data_path("ct_dicom_series"), tmp_path / "ct")
    image = read_image(tmp_path / "ct")
    data, kwargs = volume_to_layer_data(image)
    painted = np.zeros(data.shape, np.uint8)
    painted[4, 100:200, 150:260] = 1
    painted[9, 300:340, 120:200] = 2
    back = data_to_volume(painted, kwargs["metadata"])
    assert back.metadata["dicom"]["sop_instance_uids"] == image.metadata["dicom"]["sop_instance_uids"]
    attributes = labels_layer_kwargs(kwargs, {1: "tumour", 2: "cyst"})
    (tmp_path / "out").mkdir()
    written = write_labels_layer(str(tmp_path / "out" / "labels.dcm"), painted, attributes)
    reader = get_reader(written[0])
    assert reader is not None
    assert get_reader(str(next((tmp_path / "ct").iterdir()))) is None  # a single CT slice is not a volume
    (layer_data, layer_kwargs, kind) = reader(written[0])[0]
    assert kind == "labels"
    np.testing.assert_array_equal(layer_data, painted)
    assert layer_kwargs["metadata"][META_KEY]["class_names"] == {1: "tumour", 2: "cyst"}
    plain = Volume(np.zeros((4, 4, 3)), np.eye(4))
    _, plain_kwargs = volume_to_layer_data(plain)
    with pytest.raises(InputError, match="not read from"):
        write_labels_layer(str(tmp_path / "plain.dcm"), np.ones((3, 4, 4), np.uint8), plain_kwargs)
