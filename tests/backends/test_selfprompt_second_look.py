"""selfprompt-sam's second look (#19): from one painted slice, the head refitted on the first pass's tracked slices
reaches more of the structure; what the first pass found stays."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d import engine
from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.backends.selfprompt.adapted import SelfPromptModel
from napari_fewshot3d.bench.protocol import protocol_slices
from napari_fewshot3d.masks import dice
from napari_fewshot3d.support import SupportSet
from napari_fewshot3d.volume_io import read_image, read_labels

from ..conftest import data_path

LIVER = 5


def _painted(reference, value: int, k: int) -> SupportSet:
    structure = reference.array == value
    labels = np.zeros_like(reference.array)
    for index in protocol_slices(structure, 2, k):
        labels[:, :, index][structure[:, :, index]] = value
    return SupportSet.from_labels(reference.with_array(labels), "axial", {value: "liver"})


@pytest.mark.slow  # encodes the CT liver's slices twice over (first pass, then the slices the second look reaches)
def test_from_one_painted_slice_the_second_look_reaches_the_liver_the_first_pass_lost(tmp_path, monkeypatch):
    """CT liver painted on its middle slice: the first pass alone undersegments the upper liver (its left lobe looks
    unlike the painted slice; measured 0.86); with the second look it must reach 0.92, keeping every first-pass
    voxel."""
    folder = data_path("ct_abdomen")
    image, reference = read_image(folder / "image.nii.gz"), read_labels(folder / "reference_labels.nii.gz")
    liver = reference.array == LIVER
    support = _painted(reference, LIVER, 1)
    model = engine.adapt(image, support, get_backend("selfprompt-sam", cache_dir=tmp_path / "cache"), "cpu")
    assert model._second_look_classes() == [LIVER]
    shown = engine.segment(model, image, support, "cpu").array == LIVER
    with monkeypatch.context() as patch:
        patch.setattr(SelfPromptModel, "_second_look_classes", lambda self: [])
        first = engine.segment(model, image, support, "cpu").array == LIVER
    assert not (first & ~shown).any()
    assert dice(shown, liver) >= 0.92 and dice(shown, liver) >= dice(first, liver) + 0.04


def test_only_classes_painted_on_one_slice_get_a_second_look(ct_paths):
    """With more painted slices the second look measured slightly worse (k=3): such classes are tracked once."""
    reference = read_labels(ct_paths["labels"])
    for k, expected in ((1, [LIVER]), (3, [])):
        model = SelfPromptModel.__new__(SelfPromptModel)  # only its support matters here
        model.support = _painted(reference, LIVER, k)
        assert model._second_look_classes() == expected
