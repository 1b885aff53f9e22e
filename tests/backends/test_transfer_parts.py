"""The parts that let a saved model find its structures on another scan: slices at a fixed physical pixel size, 3D
candidates chosen by what the painted slices showed, the "other scan" the bench and tests build. Synthetic, fast."""

from __future__ import annotations

import numpy as np

from napari_fewshot3d.backends.selfprompt.candidates import ClassProfile, candidates, choose, coarse_indices, seed_of
from napari_fewshot3d.backends.selfprompt.intensity_prior import IntensityPrior
from napari_fewshot3d.backends.selfprompt.slice_view import Letterbox, letterbox_at
from napari_fewshot3d.bench.other_scan import OtherGrid, other_scan
from napari_fewshot3d.volume import Volume


def _disk(shape, centre, radius_px):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius_px**2


def test_a_fixed_pixel_size_gives_an_organ_the_same_size_in_the_model_input_at_any_spacing():
    """A 60 mm disk on a 360 mm field of view at 3 mm and on a 480 mm one at 0.9 mm: filling the input, its size in
    model pixels differs by the fields of view's ratio; at the model's fixed mm per pixel it is the same."""
    small = Letterbox((120, 120), 256, (3.0, 3.0))
    pixel_mm = small.mm_per_pixel
    sizes = {}
    for name, shape, spacing in (("adapted", (120, 120), 3.0), ("other", (533, 533), 0.9)):
        disk = _disk(shape, (shape[0] / 2, shape[1] / 2), 30.0 / spacing)
        filled = Letterbox(shape, 256, (spacing, spacing)).to_model(disk.astype(np.float32)) > 0.5
        fixed = letterbox_at(shape, 256, (spacing, spacing), pixel_mm, disk).to_model(disk.astype(np.float32)) > 0.5
        sizes[name] = (filled.sum(), fixed.sum())
    assert abs(sizes["other"][0] / sizes["adapted"][0] - (360 / 480) ** 2) < 0.05
    assert abs(sizes["other"][1] / sizes["adapted"][1] - 1.0) < 0.05


def test_a_wide_field_of_view_is_cut_to_a_window_on_the_body_and_masks_map_back_exactly():
    shape, spacing = (500, 400), (1.0, 1.0)
    body = np.zeros(shape, bool)
    body[200:450, 150:380] = True  # the patient off-centre
    box = letterbox_at(shape, 256, spacing, 1.5, body)
    r0, r1, c0, c1 = box.window
    assert (r1 - r0, c1 - c0) == (384, 384) and r0 <= 200 and r1 >= 450 and c0 <= 150 and c1 >= 380
    assert box.content_shape == (256, 256) and abs(box.mm_per_pixel - 1.5) < 1e-9
    mask = np.zeros(shape, np.float32)
    mask[300:340, 200:260] = 1
    back = box.mask_to_slice(box.to_model(mask)) > 0.5
    assert (back ^ (mask > 0.5)).sum() < 0.05 * mask.sum()
    outside = np.zeros(shape, np.float32)
    outside[0:20, 0:20] = 1  # outside the window: the model never sees it, nothing comes back there
    assert not (box.mask_to_slice(box.to_model(outside)) > 0.5).any()
    x0, y0, x1, y1 = box.box_to_slice(box.box_to_model(np.array([200.0, 300.0, 259.0, 339.0])))
    assert np.allclose([x0, y0, x1, y1], [200, 300, 259, 339])


def test_the_scan_a_model_was_adapted_on_is_shown_as_it_was():
    fill = Letterbox((122, 101), 256, (3.0, 3.0))
    assert letterbox_at((122, 101), 256, (3.0, 3.0), fill.mm_per_pixel) == fill


def _prior_favouring(lo: float, hi: float) -> IntensityPrior:
    rng = np.random.default_rng(0)
    return IntensityPrior.fit(rng.uniform(lo, hi, 5000), rng.uniform(0, 1, 5000))


def test_the_candidate_like_the_painted_structure_wins_over_a_brighter_bigger_look_alike():
    """Two regions the head is confident of: a large one of the wrong intensity (muscle for a spleen head) and the
    structure. The 3D candidate of the painted intensity and size is chosen, and seeds tracking at its largest
    cross-section."""
    shape, indices = (80, 80), coarse_indices(30, 3.0)
    assert indices == list(range(0, 30, 2))
    probabilities, images = {}, {}
    for i in indices:
        image = np.full(shape, 0.2, np.float32)
        p = np.zeros(shape, np.float32)
        if 10 <= i <= 26:  # the structure: intensity 0.7, radius up to 12 px
            radius = 12 - abs(i - 18)
            structure = _disk(shape, (25, 25), radius)
            image[structure], p[structure] = 0.7, 0.8
        if i <= 20:  # the look-alike: intensity 0.5, bigger and as confident
            other = _disk(shape, (60, 60), 15)
            image[other], p[other] = 0.5, 0.9
        probabilities[i], images[i] = p, image
    profile = ClassProfile(area_mm2=np.pi * 11**2 * 9.0, mean=0.7, std=0.04)
    found = candidates(probabilities, images, _prior_favouring(0.6, 0.8), 9.0, 6.0)
    assert len(found) == 2
    chosen, reason = choose(found, profile)
    assert reason is None and chosen is not None and abs(chosen.mean - 0.7) < 1e-6
    ((seed_index, seed_mask),) = seed_of(chosen).items()
    assert seed_index == 18 and seed_mask[25, 25] and not seed_mask[60, 60]


def test_no_plausible_candidate_is_reported_not_guessed():
    shape = (40, 40)
    probabilities = {i: _disk(shape, (20, 20), 5).astype(np.float32) for i in range(0, 10, 2)}
    images = {i: np.where(probabilities[i] > 0, 0.3, 0.1).astype(np.float32) for i in probabilities}
    found = candidates(probabilities, images, _prior_favouring(0.2, 0.4), 1.0, 6.0)
    too_big = ClassProfile(area_mm2=5000.0, mean=0.3, std=0.05)
    chosen, reason = choose(found, too_big)
    assert chosen is None and "cross-section" in reason
    wrong_intensity = ClassProfile(area_mm2=80.0, mean=0.8, std=0.05)
    chosen, reason = choose(found, wrong_intensity)
    assert chosen is None and "intensity" in reason
    assert choose([], too_big) == (None, "the model's head found nothing like it on this scan")


def test_the_other_scan_has_another_grid_and_keeps_the_structures_where_they_are():
    array = np.full((40, 30, 20), -1000, np.int16)
    labels = np.zeros(array.shape, np.uint8)
    array[10:30, 5:25, 8:20] = 40
    labels[15:25, 10:20, 12:18] = 3
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    image, reference = Volume(array, affine, "ct"), Volume(labels, affine, "ref")
    grid = OtherGrid(spacing=(1.5, 1.5, 2.0), keep=(0.5, 1.0), pad_mm=15.0, flip=(True, True, False))
    moved, moved_labels = other_scan(image, reference, grid)
    assert np.allclose(moved.spacing, [1.5, 1.5, 2.0]) and moved.same_grid(moved_labels)
    assert moved.affine[0, 0] < 0 and moved.affine[1, 1] < 0  # stored flipped: LPS-like, not RAS
    assert moved.array.min() == -1000 and moved.array.dtype == np.int16
    volume = lambda v: (v.array == 3).sum() * np.prod(v.spacing)  # noqa: E731
    assert abs(volume(moved_labels) / volume(reference) - 1) < 0.1
    centre = lambda v: (v.affine @ [*np.argwhere(v.array == 3).mean(axis=0), 1])[:3]  # noqa: E731
    assert np.allclose(centre(moved_labels), centre(reference), atol=1.5)
    assert moved.shape[2] < 2 * 20 * 3 / 2.0  # the lower half of the slices is cut away
