"""Per class, a random forest on the filter bank: trained on the painted slices, one class against the rest.

One forest per class, because a painted slice says everything about its own class (every other voxel there is
not it) and nothing about classes painted elsewhere; voxels painted as another class are known negatives
wherever they are. Negatives are drawn at random, at most ``NEGATIVES_PER_POSITIVE`` per positive, and classes
are weighted to balance. The training samples are what a saved model keeps: refitting them with the same seed
gives the same forest, with no pickled estimator in the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ...masks import take_slice
from ...progress import Task
from ...support import SupportSet
from .grid import WorkingGrid, features_at

N_TREES = 100
MAX_POSITIVES = 2000
NEGATIVES_PER_POSITIVE = 20
#: Voxels predicted per chunk (bounds the float32 copy of their features to ~50 MB).
CHUNK = 200_000


@dataclass
class TrainingSet:
    """Features of the sampled voxels (float16) and whether each is of the class."""

    x: np.ndarray
    y: np.ndarray


def training_set(
    support: SupportSet, value: int, features: np.ndarray, grid: WorkingGrid, seed: int = 0
) -> TrainingSet:
    """Samples for class ``value``: its painted voxels, and voxels known not to be it (the rest of its painted
    slices and of the declared empty ones, and every voxel painted as another class); never an uncertain voxel
    (the outline of a completed scribbled slice)."""
    rng = np.random.default_rng(seed + value)
    labels = support.labels.array
    known = True if support.uncertain is None else ~support.uncertain  # True: every voxel is the user's
    positives = _on_slices((labels == value) & known, support.axis, support.negative_slices(value))
    known_not = _on_slices((labels != value) & known, support.axis, support.negative_slices(value))
    elsewhere = np.array(np.nonzero((labels > 0) & (labels != value) & known))
    negatives = np.unique(np.concatenate([known_not, elsewhere], axis=1), axis=1)
    positives = _some(positives, MAX_POSITIVES, rng)
    negatives = _some(negatives, NEGATIVES_PER_POSITIVE * positives.shape[1], rng)
    indices = np.concatenate([positives, negatives], axis=1)
    y = np.zeros(indices.shape[1], bool)
    y[: positives.shape[1]] = True
    return TrainingSet(features_at(features, grid, indices).astype(np.float16), y)


def _on_slices(mask: np.ndarray, axis: int, slices: tuple[int, ...]) -> np.ndarray:
    """Indices ``(3, n)`` of the true voxels of ``mask`` on the given slices along ``axis``."""
    parts = []
    for index in slices:
        found = np.array(np.nonzero(take_slice(mask, axis, index)))
        parts.append(np.insert(found, axis, index, axis=0))
    return np.concatenate(parts, axis=1) if parts else np.zeros((3, 0), int)


def _some(indices: np.ndarray, at_most: int, rng: np.random.Generator) -> np.ndarray:
    if indices.shape[1] <= at_most:
        return indices
    return indices[:, np.sort(rng.choice(indices.shape[1], at_most, replace=False))]


def fit(samples: TrainingSet, seed: int = 0):
    """A balanced random forest on the samples (scikit-learn; all cores)."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(
        n_estimators=N_TREES, class_weight="balanced", n_jobs=os.cpu_count() or 1, random_state=seed
    )
    return forest.fit(samples.x.astype(np.float32), samples.y)


def probability(forest, features: np.ndarray, task: Task) -> np.ndarray:
    """The forest's probability of the class at every working-grid voxel (float32, the grid's shape). Blocks of
    rows along the first axis at a time: a slab of the features (a strided view) is never copied whole."""
    shape = features.shape[1:]
    out = np.zeros(shape, np.float32)
    if list(forest.classes_) != [False, True]:  # trained on one kind only: nothing to tell apart
        out[:] = float(bool(forest.classes_[0]))
        return out
    rows = max(CHUNK // max(int(np.prod(shape[1:])), 1), 1)
    for start in range(0, shape[0], rows):
        task.report(start / shape[0], "classifying voxels")
        block = features[:, start : start + rows]
        chunk = block.reshape(block.shape[0], -1).T.astype(np.float32)
        out[start : start + rows] = forest.predict_proba(chunk)[:, 1].reshape(block.shape[1:])
    return out
