"""Does a candidate region look like the painted structure, or like what surrounds it?

The head sees SAM embeddings, which blur tissue contrast at the cell scale: near a structure's
tip, a bowel loop can look like the liver to it. The painted slices also say which intensities
the structure has and which its surroundings have; a region whose intensities are on average
more likely under the surroundings is not the structure. Used as a veto while tracking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

BINS = 64


@dataclass
class IntensityPrior:
    """Log-likelihood ratio (structure vs its surroundings) per intensity bin of [0, 1] intensities."""

    log_ratio: np.ndarray  # (BINS,)

    @classmethod
    def fit(cls, inside: np.ndarray, around: np.ndarray) -> IntensityPrior:
        fg = _density(inside)
        bg = _density(around)
        return cls(np.log(fg / bg).astype(np.float32))

    def looks_like_structure(self, intensities: np.ndarray) -> bool:
        """True when the region's mean log-likelihood ratio favours the structure."""
        if intensities.size == 0:
            return False
        return float(self.log_ratio[_bins(intensities)].mean()) > 0.0


def _bins(values: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(values, np.float32) * BINS).astype(int), 0, BINS - 1)


def _density(values: np.ndarray) -> np.ndarray:
    """Smoothed histogram with a floor, so that unseen intensities are unlikely but not impossible."""
    counts = np.bincount(_bins(values.ravel()), minlength=BINS).astype(np.float64)
    smooth = ndi.gaussian_filter1d(counts, 1.5, mode="nearest")
    density = smooth / max(smooth.sum(), 1.0)
    return np.maximum(density, 1e-4)


def surroundings(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """The ring of width ``radius_px`` around a 2D mask: the tissue a leak would run into."""
    from .tracking import grown

    return grown(mask, radius_px) & ~mask
