"""The hybrid on the image it was painted on: between painted slices, two of selfprompt-sam, the forest and Fill
between slices decide; beyond them SAM's mask, and the forest's where it continues the structure without growing.
Another scan gets the learner chosen alone."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_fewshot3d import engine
from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.backends.hybrid.backend import FOREST, SAM
from napari_fewshot3d.backends.hybrid.combine import combined, continued
from napari_fewshot3d.bench.protocol import protocol_slices
from napari_fewshot3d.masks import dice
from napari_fewshot3d.progress import Task
from napari_fewshot3d.support import SupportSet
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import read_image, read_labels

from ..conftest import data_path
from .test_hybrid import _Answers

PANCREAS = 7


def square(shape=(12, 12), lo=3, hi=7) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[lo:hi, lo:hi] = True
    return mask


def test_continued_masks_keep_near_the_slice_before_and_drop_pieces_that_do_not_reach_it():
    masks = np.zeros((4, 12, 12), bool)
    masks[0] = square(lo=2, hi=8)  # one pixel wider all round than the start
    masks[1] = square(lo=2, hi=8)
    masks[1, 10:, 10:] = True  # a piece apart: dropped
    masks[3] = square()  # after an empty slice: nothing to continue from
    grown = continued(masks, square(), [0, 1, 2, 3], radius_mm=1.0, spacing=(1.0, 1.0))
    np.testing.assert_array_equal(grown[0], masks[0] & ~corners(masks[0]))  # within 1 mm of the start's square
    np.testing.assert_array_equal(grown[1], masks[0])  # its corners are within 1 mm of it; the piece apart is not
    assert not grown[2].any() and not grown[3].any()
    fixed = continued(masks, square(), [0, 1], radius_mm=0.0, spacing=(1.0, 1.0))
    np.testing.assert_array_equal(fixed[0], square())  # no growth at all: cut to the start's outline
    np.testing.assert_array_equal(fixed[1], square())


def corners(mask: np.ndarray) -> np.ndarray:
    """The four corner pixels of a square mask (1.41 mm from the square one pixel smaller)."""
    rows, cols = np.nonzero(mask)
    out = np.zeros_like(mask)
    for r in (rows.min(), rows.max()):
        for c in (cols.min(), cols.max()):
            out[r, c] = True
    return out


def test_between_painted_slices_two_of_three_decide_and_beyond_them_sam_or_the_forest_without_growing():
    truth = np.repeat(square()[:, :, None], 10, axis=2)
    sam, forest, filled = truth.copy(), truth.copy(), truth.copy()
    sam[3, :, 4] = False  # SAM a row short on slice 4
    forest[0:2, 3:5, 4:6] = True  # the forest on look-alike tissue on slices 4 and 5
    filled[:, :, 6] = False  # the interpolation misses slice 6
    filled[:, :, :2] = filled[:, :, 9:] = False  # and has nothing beyond the painting
    forest[9:11, 3:7, 8:] = True  # the forest creeping out beyond the last painted slice
    sam[:, :, 9] = square(lo=2, hi=8)  # SAM one pixel wider beyond it: its own tracking's call
    sam[3, :, 1] = False  # and a row short below the first: the forest, inside the outline above, has it
    painted = {s: truth[:, :, s] for s in (2, 5, 8)}
    out = combined(sam, forest, filled, painted, 2, (3.0, 3.0, 3.0))
    np.testing.assert_array_equal(out[:, :, 2:9], truth[:, :, 2:9])  # every mistake was one voter's alone
    np.testing.assert_array_equal(out[:, :, :2], truth[:, :, :2])  # below: SAM's, completed by the forest's
    np.testing.assert_array_equal(out[:, :, 9], sam[:, :, 9])  # SAM's wider slice; the forest's creep cut off


def test_between_painted_slices_the_forest_alone_counts_within_its_reach_of_the_interpolated_outline():
    """The interpolated outline a voxel short, SAM with it: the forest's edge, one 3 mm voxel further out, is kept;
    its look-alike tissue two voxels out is not."""
    sam = filled = np.repeat(square()[:, :, None], 7, axis=2)
    truth = np.stack([ndi.binary_dilation(filled[:, :, s]) for s in range(7)], axis=2)  # one voxel out, no corners
    forest = truth.copy()
    forest[0, 3:7, 3] = True  # two voxels (6 mm) outside the interpolated outline
    painted = {s: truth[:, :, s] for s in (0, 6)}
    out = combined(sam, forest, filled, painted, 2, (3.0, 3.0, 3.0))
    np.testing.assert_array_equal(out[:, :, 1:6], truth[:, :, 1:6])


def test_the_hybrid_shows_the_combination_on_the_painted_image_and_the_learner_chosen_elsewhere():
    truth = np.zeros((12, 12, 10), np.uint8)
    truth[3:7, 3:7, :] = 1
    sam_answer, forest_answer = truth.copy(), truth.copy()
    sam_answer[3, :, 6] = 0  # a row short on slice 6
    forest_answer[10:12, 3:5, 6] = 1  # look-alike tissue on slice 6, 4 mm (voxels) and more from the organ
    image = Volume(np.random.default_rng(0).normal(size=truth.shape).astype(np.float32), np.eye(4))
    labels = np.zeros_like(truth)
    labels[:, :, [2, 5, 8]] = truth[:, :, [2, 5, 8]]
    support = SupportSet.from_labels(image.with_array(labels), 2, {1: "organ"})
    backend = get_backend("hybrid")
    backend.parts = {SAM: _Answers(sam_answer), FOREST: _Answers(forest_answer)}
    model = engine.adapt(image, support, backend, "cpu")
    assert model.choices[1] == SAM and model.combined_classes == [1]  # slice 5 held out: a tie, SAM keeps it
    np.testing.assert_array_equal(model.segment(image, "cpu", Task()), truth)  # each mistake outvoted
    other = image.with_array(image.array + 1)  # another image has no painted slices: the learner chosen alone
    np.testing.assert_array_equal(model.segment(other, "cpu", Task()), sam_answer)


@pytest.mark.slow  # encodes the CT pancreas's slices and computes the forest's features of the whole CT
def test_the_ct_pancreas_from_three_painted_slices_beats_fill_between_slices(tmp_path):
    """The thin structure where each learner alone was no better than interpolation (#19): the default backend
    must now beat Fill between slices by a clear margin, on the bench's protocol."""
    folder = data_path("ct_abdomen")
    image, reference = read_image(folder / "image.nii.gz"), read_labels(folder / "reference_labels.nii.gz")
    pancreas = reference.array == PANCREAS
    labels = np.zeros_like(reference.array)
    for index in protocol_slices(pancreas, 2, 3):
        labels[:, :, index][pancreas[:, :, index]] = PANCREAS
    support = SupportSet.from_labels(reference.with_array(labels), "axial", {PANCREAS: "pancreas"})
    model = engine.adapt(image, support, get_backend("hybrid", cache_dir=tmp_path / "cache"), "cpu")
    shown = engine.segment(model, image, support, "cpu").array == PANCREAS
    filled = engine.segment(engine.adapt(image, support, get_backend("interpolate"), "cpu"), image, support, "cpu")
    alone = engine.segment(model.models[model.choices[PANCREAS]], image, support, "cpu").array == PANCREAS
    fill_dice = dice(filled.array == PANCREAS, pancreas)
    assert dice(shown, pancreas) >= fill_dice + 0.1 > dice(alone, pancreas) + 0.05, model.held_out_dice
