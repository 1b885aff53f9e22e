"""Training and predicting on a grid coarser in plane than the volume's, then back to the volume's grid.

On a CPU a step costs the same number of voxels whatever they cover: on a grid twice as coarse in plane, one
64×64 patch holds a whole abdominal slice, so every step supervises the whole painted outline, and inference
needs a quarter of the windows. The slicing axis is never coarsened, so painted slices stay whole slices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def coarse_factors(spacing: Sequence[float], axis: int, target_mm: float) -> tuple[int, int, int]:
    """Per array axis, the integer factor that brings the in-plane spacing nearest ``target_mm`` (never below
    the volume's own); 1 along ``axis``, and 1 everywhere when ``target_mm`` is 0 (native grid)."""
    factors = [1, 1, 1]
    if target_mm > 0:
        for a in range(3):
            if a != axis:
                factors[a] = max(1, int(round(target_mm / float(spacing[a]))))
    return tuple(factors)  # type: ignore[return-value]


def _torch_view(array: np.ndarray):
    import torch

    flat = np.ascontiguousarray(array, dtype=np.float32).reshape(-1, *array.shape[-3:])
    return torch.from_numpy(flat)[:, None]


def coarsen(array: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Block means over the last three axes (edge-padded up to whole blocks), float32; leading axes are kept."""
    if tuple(factors) == (1, 1, 1):
        return np.asarray(array, dtype=np.float32)
    import torch.nn.functional as F

    tensor = _torch_view(array)
    pads: list[int] = []
    for n, f in reversed(list(zip(array.shape[-3:], factors, strict=True))):
        pads += [0, -n % f]
    tensor = F.pad(tensor, pads, mode="replicate")
    pooled = F.avg_pool3d(tensor, kernel_size=tuple(factors))[:, 0].numpy()
    return pooled.reshape(*array.shape[:-3], *pooled.shape[-3:])


def refine(probabilities: np.ndarray, factors: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Coarse-grid maps (C, ...) → the volume's grid ``shape``: trilinear, block centres on voxel centres."""
    if tuple(factors) == (1, 1, 1):
        return probabilities
    import torch.nn.functional as F

    size = [n * f for n, f in zip(probabilities.shape[-3:], factors, strict=True)]
    fine = F.interpolate(_torch_view(probabilities).transpose(0, 1), size=size, mode="trilinear", align_corners=False)
    return fine[0].numpy()[:, : shape[0], : shape[1], : shape[2]]
