"""A saved model applied with no painted slice: on the scan it was adapted on and on another grid of that scan
(another spacing, orientation and field of view), on the whole ct_abdomen volume (the look-alikes that fooled
the single most-confident seed, the gluteal muscles for a spleen head, lie 40 slices below the spleen)."""

from __future__ import annotations

import pytest

from napari_fewshot3d import engine
from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.bench.cases import make_support
from napari_fewshot3d.bench.other_scan import other_scan
from napari_fewshot3d.masks import dice

from ..conftest import data_path

pytestmark = pytest.mark.slow  # encodes ~60-90 slices per apply at ~1-2 s each on a laptop CPU

STRUCTURES = [("liver", 5), ("spleen", 1)]


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    from napari_fewshot3d.volume_io import read_image, read_labels

    folder = data_path("ct_abdomen")
    image = read_image(folder / "image.nii.gz")
    backend = get_backend("selfprompt-sam", cache_dir=tmp_path_factory.mktemp("cache"))
    return image, read_labels(folder / "reference_labels.nii.gz", reference=image), backend


def saved_and_loaded(ct, k: int, folder):
    image, reference, backend = ct
    model = engine.adapt(image, make_support(reference, STRUCTURES, 2, k, None), backend, "cpu")
    return engine.load_model(engine.save_model(model, folder / f"liver_spleen_k{k}.fs3d"), lambda name: backend)


def test_same_scan_from_two_painted_slices_per_class_keeps_every_class(ct, tmp_path):
    """Liver and spleen painted on 2 slices each: applied to the same CT, both are found (before: spleen 0.00, the
    head's most confident slice was in the gluteal muscles)."""
    image, reference, _ = ct
    result = engine.apply_model(saved_and_loaded(ct, 2, tmp_path), image, "cpu")
    assert result.metadata[engine.WARNINGS] == []
    for name, value in STRUCTURES:
        assert dice(result.array == value, reference.array == value) >= 0.85, name


def test_another_grid_orientation_and_field_of_view_of_the_ct_is_segmented(ct, tmp_path):
    """The CT at 0.9 x 0.9 x 2 mm, stored flipped (LPS), its upper half only, 60 mm of air around: a model adapted
    on the original (k=3) finds liver and spleen there."""
    image, reference, _ = ct
    other, other_reference = other_scan(image, reference)
    result = engine.apply_model(saved_and_loaded(ct, 3, tmp_path), other, "cpu")
    assert result.same_grid(other) and result.metadata[engine.WARNINGS] == []
    for name, value in STRUCTURES:
        assert dice(result.array == value, other_reference.array == value) >= 0.85, name
