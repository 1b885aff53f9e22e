"""Where is each structure on a scan the model has never seen? Chosen as a whole 3D candidate, not one cell.

On a new scan there are no painted slices to start tracking from. The head, run on a coarse subset of slices,
fires on the structure and on look-alikes (a spleen head on the gluteal muscles). Each 3D connected region of
its confident cells is a candidate; what the model saw on its painted slices says which one is the structure:
the head's probability mass, the largest cross-section (mm², so it means the same at any spacing) and the
intensities inside. The best candidate's largest cross-section seeds tracking, as a painted slice would. When
no candidate is plausible, the class is reported as not found rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .intensity_prior import IntensityPrior

#: Spacing (mm) of the coarse subset of slices the head is first run on.
COARSE_MM = 6.0
#: A candidate's largest cross-section must be within this factor of the largest painted one.
AREA_FACTOR = 3.0
#: A candidate's mean intensity may differ from the painted structure's by this many of its standard deviations.
INTENSITY_Z = 2.5
#: The spread of intensities assumed at least (windowed [0, 1] scale), so that a uniform structure is not overfit.
MIN_STD = 0.03


@dataclass
class ClassProfile:
    """What the model saw of one class on its painted slices, in units that transfer across scans."""

    area_mm2: float  # largest painted cross-section
    mean: float  # windowed intensity inside the painted structure
    std: float

    def to_json(self) -> dict[str, float]:
        return {"area_mm2": self.area_mm2, "mean": self.mean, "std": self.std}

    @classmethod
    def from_json(cls, data: dict) -> ClassProfile:
        return cls(float(data["area_mm2"]), float(data["mean"]), float(data["std"]))

    @classmethod
    def of(cls, masks: list[np.ndarray], images: list[np.ndarray], pixel_area_mm2: float) -> ClassProfile:
        """From the painted masks of a class and the windowed slices they lie on."""
        inside = np.concatenate([image[mask] for mask, image in zip(masks, images, strict=True)])
        area = max(float(mask.sum()) for mask in masks) * pixel_area_mm2
        return cls(area, float(inside.mean()) if inside.size else 0.0, float(inside.std()) if inside.size else 0.0)


@dataclass
class Candidate:
    """One 3D region of confident cells on the coarse slices."""

    masks: dict[int, np.ndarray]  # coarse slice index -> 2D mask
    mass_mm3: float  # sum of the head's probability over the region, times the voxel volume it stands for
    area_mm2: float  # largest cross-section
    mean: float  # mean windowed intensity inside
    looks_right: bool  # the intensity prior favours the structure over its surroundings

    def score(self, profile: ClassProfile | None) -> float:
        if profile is None:
            return self.mass_mm3
        z = abs(self.mean - profile.mean) / max(profile.std, MIN_STD)
        return self.mass_mm3 * float(np.exp(-0.5 * z * z))

    def problem(self, profile: ClassProfile | None) -> str | None:
        """Why this candidate is not the structure, or None when it is plausible."""
        if not self.looks_right:
            return "its intensities look like the structure's surroundings"
        if profile is None:
            return None
        ratio = self.area_mm2 / max(profile.area_mm2, 1e-6)
        if not 1.0 / AREA_FACTOR <= ratio <= AREA_FACTOR:
            return f"its largest cross-section is {ratio:.2f}x the painted one"
        z = abs(self.mean - profile.mean) / max(profile.std, MIN_STD)
        if z > INTENSITY_Z:
            return f"its intensity is {z:.1f} standard deviations from the painted structure's"
        return None


def coarse_indices(n_slices: int, thickness_mm: float) -> list[int]:
    """Every slice ~COARSE_MM apart, centred in the volume: where the head looks first."""
    step = max(1, int(round(COARSE_MM / max(thickness_mm, 1e-6))))
    start = (n_slices - 1 - step * ((n_slices - 1) // step)) // 2
    return list(range(start, n_slices, step))


def candidates(
    probabilities: dict[int, np.ndarray],
    images: dict[int, np.ndarray],
    prior: IntensityPrior,
    pixel_area_mm2: float,
    step_mm: float,
) -> list[Candidate]:
    """The 3D connected regions of confident (p > 0.5) cells over the coarse slices, as :class:`Candidate`."""
    order = sorted(probabilities)
    stack = np.stack([probabilities[i] for i in order])
    labels, count = ndi.label(stack > 0.5)
    found = []
    for n, region in enumerate(ndi.find_objects(labels), start=1):
        if region is None:
            continue
        mask = labels[region] == n
        sub = [order[z] for z in range(region[0].start, region[0].stop)]
        masks, values, intensities = {}, [], []
        for z, index in enumerate(sub):
            full = np.zeros(stack.shape[1:], bool)
            full[region[1:]] = mask[z]
            if full.any():
                masks[index] = full
                values.append(probabilities[index][full])
                intensities.append(images[index][full])
        inside = np.concatenate(intensities)
        found.append(
            Candidate(
                masks,
                float(np.concatenate(values).sum()) * pixel_area_mm2 * step_mm,
                max(float(m.sum()) for m in masks.values()) * pixel_area_mm2,
                float(inside.mean()),
                prior.looks_like_structure(inside),
            )
        )
    return found


def choose(found: list[Candidate], profile: ClassProfile | None) -> tuple[Candidate | None, str | None]:
    """The most likely plausible candidate, or None and the reason nothing was taken."""
    if not found:
        return None, "the model's head found nothing like it on this scan"
    plausible = [c for c in found if c.problem(profile) is None]
    if not plausible:
        best = max(found, key=lambda c: c.score(profile))
        return None, f"no region looks like it (the likeliest: {best.problem(profile)})"
    return max(plausible, key=lambda c: c.score(profile)), None


def seed_of(candidate: Candidate) -> dict[int, np.ndarray]:
    """Tracking starts from the candidate's largest cross-section, as from a painted slice."""
    index = max(candidate.masks, key=lambda i: int(candidate.masks[i].sum()))
    return {index: candidate.masks[index]}
