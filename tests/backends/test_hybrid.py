"""The hybrid backend: which painted slices it holds out, and the whole choice on a real CT slab."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d import engine
from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.backends.base import AdaptedModel, Backend
from napari_fewshot3d.backends.hybrid.backend import FOREST, FOREST_ALONE_DICE, MAX_FOLDS, SAM, _folds, _without
from napari_fewshot3d.backends.hybrid.combine import combined, forest_alone_mask
from napari_fewshot3d.masks import dice
from napari_fewshot3d.progress import Task
from napari_fewshot3d.support import SupportSet
from napari_fewshot3d.volume import Volume

from ..conftest import ct_slab

LIVER = 5


def painted(slices_by_value: dict[int, list[int]], shape=(8, 8, 20)) -> SupportSet:
    labels = np.zeros(shape, np.uint8)
    for value, slices in slices_by_value.items():
        for s in slices:
            labels[value : value + 2, 2:5, s] = value
    return SupportSet.from_labels(Volume(labels, np.eye(4)), axis=2, empty_slices=[19])


def test_only_interior_painted_slices_are_held_out_at_most_max_folds_per_class():
    support = painted({1: [2, 5, 8, 11, 14, 17], 3: [4, 8, 12], 5: [6, 9]})
    folds = _folds(support)
    by_class = {v: sorted(s for s, values in folds.items() if v in values) for v in (1, 3, 5)}
    assert len(by_class[1]) == MAX_FOLDS == 2 and by_class[1] == [5, 14]  # spread over 5..14, ends never
    assert by_class[3] == [8] and by_class[5] == []  # two painted slices: nothing is interior
    without_corrected = _folds(support, {1: frozenset({5, 17})})  # slice 5 was painted as a correction
    assert sorted(s for s, values in without_corrected.items() if 1 in values) == [8, 14]
    rest = _without(support, 8)
    assert 8 not in rest.get(1).slices and 8 not in rest.get(3).slices and rest.empty_slices == (19,)
    assert rest.get(1).slices == (2, 5, 11, 14, 17) and support.get(1).slices == (2, 5, 8, 11, 14, 17)


@pytest.mark.slow  # encodes ~30 CT slices and fits four forests
def test_chooses_per_class_on_held_out_slices_and_saves_the_choice(tmp_path):
    image, reference = ct_slab(70, 100)
    liver = reference.array == LIVER
    labels = np.zeros_like(reference.array)
    for index in (2, 14, 26):
        labels[:, :, index] = np.where(liver[:, :, index], LIVER, 0)
    support = SupportSet.from_labels(reference.with_array(labels), "axial", {LIVER: "liver"})
    backend = get_backend("hybrid", cache_dir=tmp_path / "cache")
    model = engine.adapt(image, support, backend, "cpu")
    assert set(model.held_out_dice[LIVER]) == {SAM, FOREST}  # both were scored on slice 14, held out
    assert all(0.5 < d <= 1 for d in model.held_out_dice[LIVER].values()), model.held_out_dice
    chosen = model.choices[LIVER]
    better = max(model.held_out_dice[LIVER], key=model.held_out_dice[LIVER].get)
    assert chosen == better or model.held_out_dice[LIVER][FOREST] - model.held_out_dice[LIVER][SAM] <= 0.01
    result = engine.segment(model, image, support, "cpu")
    # on the painted image: both learners combined with Fill between slices, or the forest alone where it
    # reproduced the held-out slice well (test_hybrid_combine.py)
    learners = [engine.segment(model.models[name], image, support, "cpu").array == LIVER for name in (SAM, FOREST)]
    filled = engine.segment(engine.adapt(image, support, get_backend("interpolate"), "cpu"), image, support, "cpu")
    painted = {s: liver[:, :, s] for s in (2, 14, 26)}
    alone = model.held_out_dice[LIVER][FOREST] >= FOREST_ALONE_DICE
    assert model.forest_alone == ({LIVER} if alone else frozenset())
    if alone:  # kept as it is between the painted slices, continued without growing beyond them
        expected = forest_alone_mask(learners[1], painted, 2, image.spacing)
    else:
        expected = combined(*learners, filled.array == LIVER, painted, 2, image.spacing)
    for index, mask in painted.items():
        expected[:, :, index] = mask  # the painting wins on its own slices
    np.testing.assert_array_equal(result.array == LIVER, expected)
    assert dice(result.array == LIVER, liver) >= 0.9, (model.choices, model.held_out_dice)

    loaded = engine.load_model(engine.save_model(model, tmp_path / "liver.fs3d"), lambda name: backend)
    assert loaded.choices == model.choices and loaded.class_names == {LIVER: "liver"}
    applied = engine.apply_model(loaded, image, "cpu")  # no painting now: the chosen learner finds the liver itself
    assert dice(applied.array == LIVER, liver) >= 0.85 and applied.metadata[engine.WARNINGS] == []


class _Answers(Backend):
    """A learner that always gives the same labels: what each is right or wrong about is set by the test."""

    name = "answers"

    def __init__(self, labels: np.ndarray) -> None:
        super().__init__()
        self.labels = labels

    def adapt(self, volume, support, device, task):
        return _Answer(self.labels)

    def from_state(self, meta, arrays):
        raise NotImplementedError


class _Answer(AdaptedModel):
    backend_name = "answers"

    def __init__(self, labels: np.ndarray) -> None:
        self.labels, self.class_names = labels, {1: "organ"}

    def segment(self, volume, device, task):
        return self.labels.copy()


def test_a_learner_shown_keeps_the_class_when_the_slice_corrected_does_not_favour_the_other():
    truth = np.zeros((8, 8, 12), np.uint8)
    truth[2:6, 2:6, :] = 1
    sam_answer, forest_answer = truth.copy(), truth.copy()
    sam_answer[2, :, 5] = 0  # a little short on slice 5 (Dice 12/14)
    forest_answer[:, :, 8:10] = 0  # nothing on slices 8 and 9
    image = Volume(np.random.default_rng(0).normal(size=truth.shape).astype(np.float32), np.eye(4))

    def support_on(slices):
        labels = np.zeros_like(truth)
        labels[:, :, slices] = truth[:, :, slices]
        return SupportSet.from_labels(image.with_array(labels), 2, {1: "organ"})

    backend = get_backend("hybrid")
    backend.parts = {SAM: _Answers(sam_answer), FOREST: _Answers(forest_answer)}
    first = engine.adapt(image, support_on([2, 5, 8]), backend, "cpu")  # slice 5 held out: the forest is better
    assert first.choices[1] == FOREST and first.held_out_dice[1] == pytest.approx({SAM: 12 / 14, FOREST: 1.0})
    # Slice 11 corrected: the forest shown was as good there as SAM, so it stays, though the folds on the new
    # support (slices 5 and 8: SAM 0.93, forest 0.5) would now take SAM
    corrected = engine.adapt(image, support_on([2, 5, 8, 11]), backend, "cpu")
    assert corrected.choices[1] == FOREST and corrected.held_out_dice == {}  # kept: no fold was needed
    again = engine.adapt(image, support_on([2, 5, 8, 11]), backend, "cpu")  # nothing new painted: still kept
    assert again.choices[1] == FOREST
    # slice 9 corrected, where the forest shown found nothing and SAM all: the folds decide again, on slices 5 and 8
    # (interior, and painted before any correction; 9 is not held out, nor 11 in later rounds)
    worse = engine.adapt(image, support_on([2, 5, 8, 9, 11]), backend, "cpu")
    assert worse.choices[1] == SAM and worse.held_out_dice[1] == pytest.approx({SAM: (12 / 14 + 1) / 2, FOREST: 0.5})
    other = image.with_array(image.array + 1)  # another image: earlier rounds say nothing about it
    assert engine.adapt(other, support_on([2, 5, 8, 11]), backend, "cpu").choices[1] == SAM


@pytest.mark.slow  # encodes ~30 CT slices (shared with the test above through the session's cache)
def test_one_slice_segmented_alone_is_that_slice_of_the_whole_segmentation(tmp_path, monkeypatch):
    """The held-out comparison segments each held-out slice from the slab between its painted neighbours only: it
    must see exactly what segmenting the whole volume shows there, for both learners, two classes, a stride of
    slices and a coarse working grid — and also beyond the painting, where the whole volume is segmented."""
    from napari_fewshot3d.backends.pixel import grid

    monkeypatch.setattr(grid, "MAX_VOXELS", 100_000)  # the forest's features on a coarser grid than the scan's
    image, reference = ct_slab(70, 100)
    labels = np.zeros_like(reference.array)
    for index in (2, 14, 26):
        for value in (LIVER, 2):  # liver and right kidney
            labels[:, :, index][reference.array[:, :, index] == value] = value
    support = SupportSet.from_labels(reference.with_array(labels), "axial", {LIVER: "liver", 2: "kidney"})
    learners = {
        "forest": get_backend(FOREST),
        "sam": get_backend(SAM, cache_dir=tmp_path / "cache", track_step_mm=0),
        "sam, every third slice": get_backend(SAM, cache_dir=tmp_path / "cache", track_step_mm=9.0),
    }
    assert learners["sam, every third slice"].slice_stride(image, 2) == 3
    for name, backend in learners.items():
        model = engine.adapt(image, support, backend, "cpu")
        whole, _ = model.segment_with_notes(image, "cpu", Task())
        for index in (8, 9, 20, 28, 0):
            alone = model.segment_slice(image, 2, index, "cpu", Task())
            assert (alone > 0).any() or index == 0, (name, index)
            np.testing.assert_array_equal(alone, whole[:, :, index], err_msg=f"{name}, slice {index}")
