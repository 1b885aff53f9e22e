"""Intensity windows and the slice ↔ model-input geometry (synthetic arrays, milliseconds)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d.backends.selfprompt.slice_view import Letterbox, SliceView, mask_box
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.preprocess import intensity_window, looks_like_ct


def disk(shape, centre, radius, spacing=(1.0, 1.0)):
    """A disk of ``radius`` mm on a grid with pixel ``spacing`` (an ellipse in pixels when anisotropic)."""
    r, c = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return ((r - centre[0]) * spacing[0]) ** 2 + ((c - centre[1]) * spacing[1]) ** 2 <= radius**2


# ----------------------------------------------------------------------------- intensities


def test_ct_detected_and_soft_tissue_window():
    ct = np.array([[-1024, -160, 40], [240, 1000, 3000]], np.int16)
    assert looks_like_ct(ct)
    assert looks_like_ct(ct.astype(np.float64))  # rescaled NIfTI: integer values stored as float
    out = intensity_window(ct)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0, 0, 0.5], [1, 1, 1]], atol=1e-6)


def test_ct_window_overridable():
    ct = np.array([-1000, -20, 60, 140], np.int16)
    np.testing.assert_allclose(intensity_window(ct, level=60, width=160), [0, 0, 0.5, 1], atol=1e-6)
    with pytest.raises(InputError, match="width"):
        intensity_window(ct, width=0)


def test_mr_percentiles_ignore_zero_background():
    rng = np.random.default_rng(0)
    mr = np.zeros((40, 40, 10), np.float32)
    mr[10:30, 10:30] = rng.uniform(100, 500, (20, 20, 10))
    mr[15, 15, 5] = 50_000  # one hot spike must not squash the scale
    assert not looks_like_ct(mr)
    out = intensity_window(mr)
    body = out[10:30, 10:30]
    lo, hi = np.percentile(mr[10:30, 10:30], [0.5, 99.5])
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0, 0, 0] == 0.0  # background
    assert abs(float(np.median(body)) - (np.median(mr[10:30, 10:30]) - lo) / (hi - lo)) < 1e-5
    assert np.mean(body >= 1.0) < 0.01 and np.mean(body <= 0.0) < 0.01


def test_explicit_modality_and_bad_values():
    ct_like = np.array([-1024.0, 0.0, 100.0])
    assert intensity_window(ct_like, modality="mr").max() == 1.0  # forced MR: percentile scaling
    assert np.all(intensity_window(np.full((3, 3), 7.0)) == 0)  # constant image: no division by zero
    with_nan = intensity_window(np.array([np.nan, 0.0, 50.0, 100.0]), modality="mr")
    assert np.isfinite(with_nan).all() and with_nan[0] == 0.0
    with pytest.raises(InputError, match="modality"):
        intensity_window(ct_like, modality="pet")


# ----------------------------------------------------------------------------- letterbox


def test_content_shape_keeps_physical_aspect():
    assert Letterbox((122, 101), 256).content_shape == (256, 212)
    assert Letterbox((101, 122), 256).content_shape == (212, 256)
    assert Letterbox((512, 512), 256).content_shape == (256, 256)
    # A sagittal slice of a 3 mm axial scan: 40 rows of 3 mm, 100 columns of 0.98 mm → 120 mm × 98 mm.
    box = Letterbox((40, 100), 256, spacing=(3.0, 0.98))
    assert box.content_shape == (256, 209)


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [((101, 122), (1.0, 1.0)), ((122, 101), (1.0, 1.0)), ((40, 100), (3.0, 0.98)), ((90, 60), (0.7, 1.4))],
)
def test_mask_round_trip_is_exact(shape, spacing):
    letterbox = Letterbox(shape, 256, spacing)
    mask = disk(
        shape, (shape[0] * 0.45, shape[1] * 0.55), 0.3 * min(shape[0] * spacing[0], shape[1] * spacing[1]), spacing
    )
    mask |= np.pad(np.ones((3, 4), bool), ((5, shape[0] - 8), (7, shape[1] - 11)))  # a small rectangle too
    model = letterbox.to_model(mask.astype(np.float32))
    assert model.shape == (256, 256)
    rows, cols = letterbox.content_shape
    assert not model[rows:].any() and not model[:, cols:].any()  # padding bottom/right only
    back = letterbox.mask_to_slice(model)
    assert back.shape == shape
    np.testing.assert_array_equal(back > 0.5, mask)


def test_linear_ramp_survives_round_trip():
    """Half-pixel-centred resizing maps pixel extents exactly: a linear ramp comes back unchanged inside."""
    letterbox = Letterbox((50, 70), 256, spacing=(2.0, 1.0))
    r, c = np.meshgrid(np.arange(50), np.arange(70), indexing="ij")
    ramp = (0.3 * r + 0.7 * c).astype(np.float32)
    back = letterbox.mask_to_slice(letterbox.to_model(ramp))
    # Antialiased shrinking weighs a discretised triangle: unbiased to within 1 % of a pixel.
    np.testing.assert_allclose(back[2:-2, 2:-2], ramp[2:-2, 2:-2], atol=0.01)


def test_downscaling_round_trip_is_close():
    """512×512 slices shrink to 256: fine detail is lost, but the shape comes back on the same pixels."""
    letterbox = Letterbox((512, 512), 256, spacing=(0.8, 0.8))
    mask = disk((512, 512), (200, 300), 90.0, (0.8, 0.8))
    back = letterbox.mask_to_slice(letterbox.to_model(mask.astype(np.float32))) > 0.5
    dice = 2 * (back & mask).sum() / (back.sum() + mask.sum())
    assert dice > 0.995


@pytest.mark.parametrize(("shape", "spacing"), [((101, 122), (1.0, 1.0)), ((40, 100), (3.0, 0.98))])
def test_box_mapping_matches_resized_mask(shape, spacing):
    letterbox = Letterbox(shape, 256, spacing)
    mask = disk(shape, (shape[0] / 2, shape[1] / 3), 0.25 * min(shape[0] * spacing[0], shape[1] * spacing[1]), spacing)
    box = mask_box(mask)
    model_box = letterbox.box_to_model(box)
    resized_box = mask_box(letterbox.to_model(mask.astype(np.float32)) > 0.5)
    np.testing.assert_allclose(model_box, resized_box, atol=1.5)
    np.testing.assert_allclose(letterbox.box_to_slice(model_box), box, atol=1e-9)


def test_anisotropic_pixels_are_not_squashed():
    """A round structure on 3 mm × 0.98 mm pixels is an ellipse in the array, and round again for the model."""
    spacing = (3.0, 0.98)
    mask = disk((40, 100), (20, 50), 30.0, spacing)
    x0, y0, x1, y1 = mask_box(mask)
    assert (x1 - x0) > 2.5 * (y1 - y0)  # squashed in pixel terms
    physical_aspect = (y1 - y0 + 1) * spacing[0] / ((x1 - x0 + 1) * spacing[1])
    x0, y0, x1, y1 = mask_box(Letterbox((40, 100), 256, spacing).to_model(mask.astype(np.float32)) > 0.5)
    assert abs((y1 - y0 + 1) / (x1 - x0 + 1) - physical_aspect) < 0.02  # the model sees millimetres


def test_nearest_mode_keeps_labels_and_shape_checks():
    labels = np.zeros((20, 30), np.float32)
    labels[5:10, 5:20] = 3
    model = Letterbox((20, 30), 64).to_model(labels, mode="nearest")
    assert set(np.unique(model)) == {0.0, 3.0}
    with pytest.raises(ValueError):
        Letterbox((20, 30), 64).to_model(np.zeros((30, 20)))
    with pytest.raises(ValueError):
        Letterbox((20, 30), 64).mask_to_slice(np.zeros((32, 32)))
    assert mask_box(np.zeros((4, 4), bool)) is None


# ----------------------------------------------------------------------------- radiological view


def test_radiological_view_of_ras_axial_slice():
    affine = np.diag([3.0, 3.0, 3.0, 1.0])  # RAS: i → right, j → anterior
    view = SliceView.radiological(affine, axis=2)
    assert view == SliceView(transpose=True, flip_rows=True, flip_cols=True)
    slice_ = np.arange(12).reshape(3, 4)  # (i, j)
    shown = view.apply(slice_)
    assert shown.shape == (4, 3)
    assert shown[0, 0] == slice_[2, 3]  # top-left: most anterior (max j) and most right (max i)
    np.testing.assert_array_equal(view.invert(shown), slice_)
    assert view.spacing((0.8, 3.0)) == (3.0, 0.8)


def test_radiological_view_of_lps_volume_is_already_displayed():
    affine = np.diag([-0.8, -0.8, 2.0, 1.0])  # ITK/DICOM LPS: i → left, j → posterior
    affine[:3, :3] = affine[:3, :3][:, [1, 0, 2]]  # array axis 0 runs along A/P, axis 1 along R/L
    view = SliceView.radiological(affine, axis=2)
    assert view == SliceView(transpose=False, flip_rows=False, flip_cols=False)
    coronal = SliceView.radiological(np.diag([3.0, 3.0, 3.0, 1.0]), axis=1)  # (i, k): rows S→I, cols R→L
    assert coronal == SliceView(transpose=True, flip_rows=True, flip_cols=True)
