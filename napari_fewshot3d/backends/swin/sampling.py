"""What a sparse-slice fine-tune learns from: the normalised image, per-class targets, and per-class
supervision masks that are 1 only on the slices where that class is known (its painted slices and the
declared empty ones) — then patches drawn around those slices, and their augmentation.

Patch sides are given as (in-plane, in-plane, along the slicing axis) and laid onto the array so that
the third side runs along the support's axis: a patch holds a whole painted slice's neighbourhood in
plane and a few slices either side of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...masks import take_slice
from ...preprocess import intensity_window, looks_like_ct
from ...support import SupportSet
from .resolution import coarsen


def modality_of(array: np.ndarray) -> str:
    """'ct' for Hounsfield data, else 'mr' — fixed at adapt time so that applying normalises the same way."""
    return "ct" if looks_like_ct(array) else "mr"


def normalise(array: np.ndarray, modality: str) -> np.ndarray:
    """CT through the soft-tissue window, MR between robust percentiles: float32 in [0, 1]."""
    return intensity_window(array, modality)


def supervision(support: SupportSet) -> tuple[np.ndarray, np.ndarray]:
    """(targets, weights), each (C, *shape) uint8, classes in ``support.values`` order.

    ``weights[c]`` is 1 on the slices where class c is known (present or known absent) and 0 elsewhere:
    a voxel on any other slice never supervises class c.
    """
    labels = support.labels.array
    targets = np.zeros((len(support.classes), *labels.shape), np.uint8)
    weights = np.zeros_like(targets)
    for c, cls in enumerate(support.classes):
        targets[c] = labels == cls.value
        for index in support.negative_slices(cls.value):
            support.slice_of(weights[c], index)[...] = 1
    targets *= weights  # nothing outside the known slices, even by mistake
    return targets, weights


def array_patch(patch: tuple[int, int, int], axis: int) -> tuple[int, int, int]:
    """(in-plane, in-plane, along-axis) sides → sides in array order."""
    sides = [patch[0], patch[1]]
    sides.insert(axis, patch[2])
    return tuple(sides)  # type: ignore[return-value]


def pad_to(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-pad the last three axes at their ends up to ``shape`` (padding is never supervised: weight 0)."""
    pads = [(0, 0)] * (array.ndim - 3) + [(0, max(0, s - n)) for s, n in zip(shape, array.shape[-3:], strict=True)]
    return np.pad(array, pads) if any(p[1] for p in pads) else array


@dataclass
class PatchSampler:
    """Draws training patches around the known slices of a random class."""

    image: np.ndarray  # (X, Y, Z) float32, normalised
    targets: np.ndarray  # (C, X, Y, Z)
    weights: np.ndarray  # (C, X, Y, Z)
    known_slices: list[list[int]]  # per class, the slices its weight covers
    axis: int
    patch: tuple[int, int, int]  # array order
    rng: np.random.Generator
    #: Probability that a patch is centred on the class's own voxels rather than anywhere on the slice.
    foreground_fraction: float = 0.67

    @classmethod
    def build(
        cls,
        image: np.ndarray,
        support: SupportSet,
        patch: tuple[int, int, int],
        seed: int,
        factors: tuple[int, int, int] = (1, 1, 1),
    ) -> PatchSampler:
        """``patch`` as (in-plane, in-plane, along-axis); image and supervision are first coarsened by ``factors``
        (a coarse voxel is a target where most of its block is, and known where its block is)."""
        sides = array_patch(patch, support.axis)
        targets, weights = supervision(support)
        if factors != (1, 1, 1):
            image = coarsen(image, factors)
            weights = (coarsen(weights, factors) >= 0.5).astype(np.uint8)
            targets = (coarsen(targets, factors) >= 0.5).astype(np.uint8) * weights
        shape = tuple(max(s, n) for s, n in zip(sides, image.shape, strict=True))
        known = [list(support.negative_slices(c.value)) for c in support.classes]
        return cls(
            pad_to(image, shape),
            pad_to(targets, shape),
            pad_to(weights, shape),
            known,
            support.axis,
            sides,
            np.random.default_rng(seed),
        )

    def _corner(self, centre: np.ndarray) -> tuple[int, ...]:
        shape = self.image.shape
        return tuple(int(np.clip(c - p // 2, 0, n - p)) for c, p, n in zip(centre, self.patch, shape, strict=True))

    def sample(self) -> dict[str, np.ndarray]:
        """One patch: image (1, ...), target and weight (C, ...), as float32; a known slice always lies inside."""
        c = int(self.rng.integers(len(self.known_slices)))
        index = int(self.rng.choice(self.known_slices[c]))
        plane = take_slice(self.targets[c], self.axis, index)
        points = np.argwhere(plane) if self.rng.random() < self.foreground_fraction else np.empty((0, 2))
        if len(points):
            in_plane = points[self.rng.integers(len(points))]
        else:
            in_plane = np.array([self.rng.integers(n) for n in plane.shape])
        reach = self.patch[self.axis] // 4  # along the axis, move the centre but keep the known slice inside
        centre = list(in_plane)
        centre.insert(self.axis, index + int(self.rng.integers(-reach, reach + 1)))
        corner = self._corner(np.array(centre))
        box = tuple(slice(o, o + p) for o, p in zip(corner, self.patch, strict=True))
        return {
            "image": self.image[box][None].astype(np.float32),
            "target": self.targets[(slice(None), *box)].astype(np.float32),
            "weight": self.weights[(slice(None), *box)].astype(np.float32),
        }


def augmenter(axis: int, seed: int):
    """MONAI augmentation for a patch dict: a small in-plane rotation and zoom applied to image, targets and
    supervision alike (so a painted voxel stays painted), then intensity scale, shift and noise on the image."""
    from monai.transforms import Compose, RandAffined, RandGaussianNoised, RandScaleIntensityd, RandShiftIntensityd

    rotate = [0.0, 0.0, 0.0]
    rotate[axis] = 0.25  # radians, about the slicing axis only: painted slices stay slices
    spatial = RandAffined(
        keys=["image", "target", "weight"],
        prob=0.5,
        rotate_range=rotate,
        scale_range=[0.1, 0.1, 0.1],
        mode=["bilinear", "nearest", "nearest"],
        padding_mode="zeros",
    )
    transforms = Compose(
        [
            spatial,
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
            RandGaussianNoised(keys="image", std=0.02, prob=0.3),
        ]
    )
    transforms.set_random_state(seed=seed)
    return transforms
