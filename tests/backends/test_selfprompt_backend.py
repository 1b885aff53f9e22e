"""The self-prompt LiteMedSAM backend end to end on a real CT slab: accuracy, cache, save/apply, multi-class."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d import engine
from napari_fewshot3d.backends.selfprompt.cache import CACHE_ENV
from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.masks import dice
from napari_fewshot3d.support import SupportSet

from ..conftest import ct_slab

pytestmark = pytest.mark.slow  # encodes ~30 slices at ~1-2 s each on a laptop CPU

SPLEEN, KIDNEY_RIGHT, LIVER = 1, 2, 5


@pytest.fixture(scope="module")
def slab():
    """30 axial slices of ct_abdomen through liver and spleen, and their reference labels."""
    crop_image, crop = ct_slab(80, 110)
    labels = np.where(np.isin(crop.array, [SPLEEN, LIVER]), crop.array, 0).astype(np.uint8)
    return crop_image, crop.with_array(labels)


@pytest.fixture(scope="module")
def adapted(slab):
    image, reference = slab
    painted = paint_slices(reference.array, [SPLEEN, LIVER], 2, k=3)
    support = SupportSet.from_labels(reference.with_array(painted), "axial", {SPLEEN: "spleen", LIVER: "liver"})
    result, model = engine.run(image, support, "selfprompt-sam", "cpu")
    return support, result, model


def unpainted(support: SupportSet, n: int) -> list[int]:
    return [s for s in range(n) if s not in support.painted_slices()]


def test_multiclass_segmentation_beats_fill_between_slices(slab, adapted):
    image, reference = slab
    support, result, _ = adapted
    baseline, _ = engine.run(image, support, "interpolate", "cpu")
    rest = unpainted(support, image.shape[2])
    for value, floor in ((LIVER, 0.88), (SPLEEN, 0.8)):
        ours = dice(result.array[:, :, rest] == value, reference.array[:, :, rest] == value)
        theirs = dice(baseline.array[:, :, rest] == value, reference.array[:, :, rest] == value)
        assert ours >= floor, (value, ours)
        assert ours > theirs, (value, ours, theirs)
    # The painted slices hold exactly what was painted.
    for s in support.painted_slices():
        np.testing.assert_array_equal(result.array[:, :, s], support.labels.array[:, :, s])


def test_readapting_reuses_cached_embeddings_and_decodes(slab, adapted, monkeypatch):
    image, _ = slab
    support, first, model = adapted
    decodes = []
    backend = model.embedders  # the backend that adapted it: its cache serves the next round
    original = type(model_of(model)).decode
    monkeypatch.setattr(type(model_of(model)), "decode", lambda *a, **kw: decodes.append(1) or original(*a, **kw))
    before = backend.encoder_clock.slices
    again, _ = engine.run(image, support, backend, "cpu")
    assert backend.encoder_clock.slices == before and not decodes  # same painting: same boxes, nothing recomputed
    np.testing.assert_array_equal(again.array, first.array)


def model_of(adapted_model):
    return adapted_model.embedders.sam("cpu", adapted_model.checkpoint, adapted_model.model_type)


def test_saved_model_applies_to_a_volume_without_painting(tmp_path, slab, adapted):
    image, reference = slab
    _, _, model = adapted
    loaded = engine.load_model(engine.save_model(model, tmp_path / "liver_spleen.fs3d"))
    assert loaded.class_names == {SPLEEN: "spleen", LIVER: "liver"}
    applied = engine.segment(loaded, image, device="cpu")
    assert dice(applied.array == LIVER, reference.array == LIVER) >= 0.91  # measured 0.937


def test_one_painted_slice_extends_beyond_it(slab):
    image, reference = slab
    painted = paint_slices(reference.array, [LIVER], 2, k=1)
    support = SupportSet.from_labels(reference.with_array(painted), "axial")
    seen: list[float] = []
    result, _ = engine.run(image, support, "selfprompt-sam", "cpu", lambda f, m: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0  # a progress bar that never goes back
    rest = unpainted(support, image.shape[2])
    assert dice(result.array[:, :, rest] == LIVER, reference.array[:, :, rest] == LIVER) >= 0.92  # measured 0.947


def test_mr_kidney_outline_follows_the_kidney_not_its_border_cells(tmp_path, monkeypatch):
    """On MR the head's own outline is kept where SAM's refinement does not help (decided from the painting); its
    0.5 contour would run through the partly covered cells around the kidney, a band ~3 mm too wide all round."""
    from napari_fewshot3d.volume_io import read_image, read_labels

    from ..conftest import data_path

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    folder = data_path("mr_abdomen")
    image, reference = read_image(folder / "image.nii.gz"), read_labels(folder / "reference_labels.nii.gz")
    kidney = 2  # kidney_right in labels.json
    axis = image.slicing_axis("axial")
    painted = paint_slices(np.where(reference.array == kidney, kidney, 0).astype(np.uint8), [kidney], axis, k=3)
    support = SupportSet.from_labels(reference.with_array(painted), axis)
    result, model = engine.run(image, support, "selfprompt-sam", "cpu")
    baseline, _ = engine.run(image, support, "interpolate", "cpu")
    truth = reference.array == kidney
    assert not model.refine[kidney]
    ours, theirs = dice(result.array == kidney, truth), dice(baseline.array == kidney, truth)
    assert ours > theirs + 0.04, (ours, theirs)
    assert (result.array == kidney).sum() < 1.15 * truth.sum()  # not systematically wider than the kidney


@pytest.mark.parametrize(
    "axis_name, value, first, stop, floor",
    # Floors a few hundredths under what was measured (coronal 0.899, sagittal 0.962; Fill between slices 0.706, 0.695)
    [("coronal", KIDNEY_RIGHT, 38, 45, 0.87), ("sagittal", SPLEEN, 23, 30, 0.93)],
)
def test_coronal_and_sagittal_painting(axis_name, value, first, stop, floor):
    """Painted on 2 coronal (or sagittal) slices of a 7-slice slab cut along that axis: the structure is found on the
    others, better than Fill between slices, and the model keeps the axis it was painted along."""
    image, reference = ct_slab(first, stop, axis=image_axis(axis_name))
    axis = image.slicing_axis(axis_name)
    assert axis == image_axis(axis_name)
    truth = np.where(reference.array == value, value, 0).astype(np.uint8)
    support = SupportSet.from_labels(reference.with_array(paint_slices(truth, [value], axis, k=2)), axis_name)
    assert support.axis == axis
    result, model = engine.run(image, support, "selfprompt-sam", "cpu")
    baseline, _ = engine.run(image, support, "interpolate", "cpu")
    assert model.axis == axis
    rest = [s for s in range(image.shape[axis]) if s not in support.painted_slices()]
    ours = dice(np.take(result.array, rest, axis) == value, np.take(truth, rest, axis) == value)
    theirs = dice(np.take(baseline.array, rest, axis) == value, np.take(truth, rest, axis) == value)
    assert ours >= floor and ours > theirs, (ours, theirs)
    for s in support.painted_slices():
        np.testing.assert_array_equal(np.take(result.array, s, axis), np.take(support.labels.array, s, axis))


def image_axis(axis_name: str) -> int:
    """The array axis of ct_abdomen that a view cuts across (its grid is close to RAS)."""
    return {"sagittal": 0, "coronal": 1, "axial": 2}[axis_name]
