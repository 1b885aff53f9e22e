"""The self-prompt backend's parts on synthetic data: cache, head, tracking."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_fewshot3d.backends.selfprompt.cache import EmbeddingCache, content_key
from napari_fewshot3d.backends.selfprompt.head import CellHead, cell_samples, fit_head
from napari_fewshot3d.backends.selfprompt.tracking import (
    continue_structure,
    fill_between,
    grown,
    strided_slices,
    track,
)


def test_cache_memory_then_disk_and_keys_follow_content(tmp_path):
    cache = EmbeddingCache(tmp_path)
    array = np.arange(24).reshape(2, 3, 4)
    key = content_key(array, model="m", axis=2)
    assert key != content_key(array, model="m", axis=1)
    assert key != content_key(array + 1, model="m", axis=2)
    assert cache.get(key, 3) is None
    embedding = np.random.default_rng(0).normal(size=(8, 4, 4)).astype(np.float32)
    cache.put(key, 3, embedding)
    fresh = EmbeddingCache(tmp_path)  # a new session: from disk
    np.testing.assert_allclose(fresh.get(key, 3), embedding, atol=1e-2)
    assert fresh.missing(key, [1, 3]) == [1]
    (tmp_path / key / "00001.npy").write_bytes(b"torn")
    assert fresh.get(key, 1) is None and not (tmp_path / key / "00001.npy").exists()


def test_head_separates_classes_and_round_trips_as_arrays():
    rng = np.random.default_rng(1)
    d, n = 16, 12
    truth = np.zeros((n, n), bool)
    truth[3:8, 4:9] = True
    embedding = rng.normal(size=(d, n, n)).astype(np.float32)
    embedding[0][truth] += 3.0  # one feature carries the class
    coverage = truth.astype(float)
    coverage[3, 4] = 0.3  # a partly covered cell is left out of training
    features, targets = cell_samples(embedding, coverage, np.ones((n, n), bool))
    assert len(targets) == n * n - 1
    head = fit_head({7: [(features, targets)]})
    probability = head.predict(embedding)[0]
    assert ((probability > 0.5) == truth).mean() > 0.95
    again = CellHead.from_arrays(head.to_arrays())
    np.testing.assert_allclose(again.predict(embedding), head.predict(embedding), atol=1e-6)


def test_a_warm_started_head_reaches_the_same_fit():
    rng = np.random.default_rng(2)
    d, n = 16, 12
    truth = np.zeros((n, n), bool)
    truth[2:9, 3:10] = True
    slices = []
    for shift in (0.0, 0.5, 1.0):
        embedding = rng.normal(loc=shift, size=(d, n, n)).astype(np.float32)
        embedding[1][truth] += 2.0
        slices.append(cell_samples(embedding, truth.astype(float), np.ones((n, n), bool)))
    everything = fit_head({3: slices})
    cold = fit_head({3: slices[:2]})
    warm = fit_head({3: slices[:2]}, start=everything)  # another standardisation: converted, not copied
    assert not np.allclose(everything.mean, cold.mean)
    np.testing.assert_allclose(warm.predict(embedding), cold.predict(embedding), atol=2e-3)


def test_decoded_masks_are_remembered_per_slice_and_prompt():
    cache = EmbeddingCache(use_disk=False)
    mask = np.eye(4, dtype=bool)
    cache.put_decoded("volume", 5, b"box", mask)
    assert cache.get_decoded("volume", 5, b"box") is mask
    assert cache.get_decoded("volume", 5, b"other box") is None and cache.get_decoded("volume", 6, b"box") is None
    cache.clear_memory()  # a cold benchmark run starts from nothing
    assert cache.get_decoded("volume", 5, b"box") is None


def test_growing_a_mask_by_a_radius_is_a_dilation_by_that_disk():
    rng = np.random.default_rng(3)
    for radius in (0.0, 0.5, 1.0, 2.5, 7.3, 12.0):
        r = int(np.ceil(radius))
        y, x = np.mgrid[-r : r + 1, -r : r + 1]
        disk = x * x + y * y <= radius * radius + 1e-9
        for _ in range(3):
            mask = rng.random((60, 70)) > 0.99  # scattered pixels, some at the border
            assert np.array_equal(grown(mask, radius), ndi.binary_dilation(mask, disk)), radius
    assert not grown(np.zeros((5, 5), bool), 3.0).any()


def test_continue_structure_drops_far_components_and_limits_growth():
    reference = np.zeros((30, 30), bool)
    reference[10:16, 10:16] = True
    candidate = np.zeros_like(reference)
    candidate[8:20, 8:20] = True  # grows by 2-4 px
    candidate[25:28, 25:28] = True  # a look-alike elsewhere
    kept = continue_structure(candidate, reference, growth_px=2)
    assert not kept[25:28, 25:28].any()
    assert kept[8:18, 10:16].all() and kept[10:16, 8:18].all()
    assert not kept[18:].any() and not kept[:, 18:].any()


def test_track_stops_where_the_structure_ends_and_encodes_only_what_it_reaches():
    n = 40
    blob = np.zeros((n, 20, 20), bool)
    blob[10:21, 5:15, 5:15] = True  # the structure: slices 10..20
    blob[30:35, 5:15, 5:15] = True  # a look-alike further along, not connected
    asked: list[int] = []

    def candidate_of(indices):
        asked.extend(indices)
        return {i: blob[i] for i in indices}

    result = track(n, {15: blob[15]}, candidate_of, growth_px=1)
    reached = sorted(i for i, m in result.items() if m.any())
    assert reached == list(range(10, 21))
    assert max(asked) == 21 and min(asked) == 9  # one empty slice past each end, no further


def test_track_ends_where_the_structure_nearly_vanishes_even_if_something_touches_its_tip():
    n = 30
    blob = np.zeros((n, 40, 40), bool)
    blob[12:20, 5:25, 5:25] = True  # the structure, 400 px per slice
    blob[11, 14:16, 14:16] = True  # its tip: 4 px, 1 % of its cross-section
    blob[0:11, 12:18, 12:18] = True  # bowel touching the tip and running on below it

    result = track(n, {16: blob[16]}, lambda indices: {i: blob[i] for i in indices}, growth_px=3)
    reached = sorted(i for i, m in result.items() if m.any())
    assert reached == list(range(11, 20))  # the tip is kept, nothing beyond it


def test_track_asks_to_continue_a_structure_only_where_the_coarse_mask_lost_it():
    """A thin structure the coarse mask loses past slice 12: ``continue_lost`` is asked there only (not where the
    coarse mask continued it), what it gives is kept within reach and tracked on from; None ends the structure."""
    n = 30
    tube = np.zeros((n, 20, 20), bool)
    tube[5:25, 8:12, 8:12] = True  # the structure: slices 5..24
    coarse = tube.copy()
    coarse[13:] = False  # the head sees it on slices 5..12 only
    asked: list[int] = []

    def continue_lost(index, reference, candidate, reach):
        asked.append(index)
        assert reference.any() and not candidate.any()
        if index >= 20:  # past slice 19 the proposal fails its checks
            return None
        return tube[index] & reach

    result = track(n, {8: tube[8]}, lambda indices: {i: coarse[i] for i in indices}, 1, continue_lost=continue_lost)
    reached = sorted(i for i, m in result.items() if m.any())
    assert reached == list(range(5, 20))
    assert asked == [4, *range(13, 21)]  # below slice 5 once (nothing there), above from where the head lost it
    without = track(n, {8: tube[8]}, lambda indices: {i: coarse[i] for i in indices}, 1)
    assert sorted(i for i, m in without.items() if m.any()) == list(range(5, 13))


def _cone(n: int, size: int = 61) -> np.ndarray:
    """A cone along the slices: radius 6 + 0.5 mm per slice, from slice 5 to n - 6 (1 mm pixels)."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    cone = np.zeros((n, size, size), bool)
    for i in range(5, n - 5):
        cone[i] = xx * xx + yy * yy <= (6 + 0.5 * (i - 5)) ** 2
    return cone


def test_track_with_a_stride_asks_only_every_strideth_slice_and_the_ones_it_must_visit():
    n = 40
    cone = _cone(n)
    asked: list[int] = []

    def candidate_of(indices):
        asked.extend(indices)
        return {i: cone[i] for i in indices}

    result = track(n, {16: cone[16]}, candidate_of, growth_px=1, negatives=(38,), stride=3, visit=(20,))
    assert set(asked) <= set(strided_slices(n, 3, (16, 20, 38))) and 20 in asked
    assert len(asked) < n / 2
    assert all(result[i].any() for i in asked if 5 <= i < n - 5 and i in result)
    # growth scales with the step: one px per slice stepped over, so a cone widening 0.5 px per slice is followed
    assert result[33].sum() == cone[33].sum()


def test_track_with_a_stride_reaches_a_structure_through_to_the_volumes_last_slice():
    n = 42  # 41, the last slice, is no multiple of the stride
    column = np.zeros((n, 21, 21), bool)
    column[:, 5:15, 5:15] = True
    result = track(n, {30: column[30]}, lambda indices: {i: column[i] for i in indices}, growth_px=1, stride=3)
    assert max(result) == n - 1 and result[n - 1].any()
    filled = fill_between(result, (1.0, 1.0), stride=3)
    assert sorted(i for i in filled if i > 30) == [31, 32, 34, 35, 37, 38, 40]
    assert all(filled[i].sum() == column[i].sum() for i in filled)


def test_fill_between_morphs_outlines_tapers_to_an_empty_side_and_leaves_wide_gaps():
    cone = _cone(40)
    tracked = {i: cone[i] for i in (9, 12, 15, 30)} | {6: np.zeros_like(cone[0])}
    filled = fill_between(tracked, (1.0, 1.0), stride=3)
    assert sorted(filled) == [7, 8, 10, 11, 13, 14]  # 15 -> 30 is wider than the stride: never reached
    for i in (10, 11, 13, 14):
        inter = (filled[i] & cone[i]).sum()
        assert 2 * inter / (filled[i].sum() + cone[i].sum()) > 0.9  # the morph is the cone's own outline
    assert cone[9].sum() > filled[8].sum() > filled[7].sum() > 0  # shrinking towards the empty slice 6
    assert not fill_between({0: cone[0], 3: cone[0]}, (1.0, 1.0), stride=3)  # two empty sides: nothing
