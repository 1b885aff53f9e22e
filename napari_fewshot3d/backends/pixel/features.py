"""An ilastik-style 3D filter bank at voxel resolution: what a pixel classifier sees at every voxel.

Per scale σ (in voxels of an isotropic working grid, so that a filter is round in millimetres whatever the scan's
voxel size): Gaussian smoothing, Laplacian of Gaussian, Gaussian gradient magnitude, difference of Gaussians,
structure-tensor eigenvalues and Hessian-of-Gaussian eigenvalues — ilastik's default set, 61 features with the
Gaussian at σ 0.3 added. Features are stored float16 (a random forest's thresholds do not need more) so a
4-million-voxel grid holds its 61 features in ~0.5 GB.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage as ndi

from ...progress import Task

#: ilastik's default scales (voxels of the working grid).
SIGMAS = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
#: The finest smoothing, on its own (ilastik's σ 0.3 Gaussian).
FINEST = 0.3
#: Per scale: Gaussian, LoG, gradient magnitude, DoG, 3 structure-tensor and 3 Hessian eigenvalues.
PER_SIGMA = 10
N_FEATURES = 1 + PER_SIGMA * len(SIGMAS)


def feature_names() -> list[str]:
    """The names of :func:`filter_bank`'s features, in its order (for reports and saved models)."""
    names = [f"gaussian {FINEST}"]
    for sigma in SIGMAS:
        names += [f"gaussian {sigma}", f"log {sigma}", f"gradient {sigma}", f"dog {sigma}"]
        names += [f"structure tensor {n} {sigma}" for n in range(3)]
        names += [f"hessian {n} {sigma}" for n in range(3)]
    return names


def filter_bank(image: np.ndarray, task: Task | None = None) -> np.ndarray:
    """``(N_FEATURES, *image.shape)`` float16 features of a float32 image in [0, 1]; progress per scale."""
    task = task or Task()
    image = np.asarray(image, np.float32)
    out = np.empty((N_FEATURES, *image.shape), np.float16)
    out[0] = ndi.gaussian_filter(image, FINEST)
    row = 1
    for n, sigma in enumerate(SIGMAS):
        task.report(n / len(SIGMAS), f"image features at scale {sigma} voxels")
        for feature in _features_at(image, sigma):
            out[row] = feature
            row += 1
    task.report(1.0, "image features ready")
    return out


def _features_at(image: np.ndarray, sigma: float) -> Iterator[np.ndarray]:
    smooth = ndi.gaussian_filter(image, sigma)
    yield smooth
    yield ndi.gaussian_laplace(image, sigma)
    yield ndi.gaussian_gradient_magnitude(image, sigma)
    yield smooth - ndi.gaussian_filter(image, 0.66 * sigma)
    del smooth
    yield from _eigenvalues(_structure_tensor(image, sigma))
    yield from _eigenvalues(_hessian(image, sigma))


def _structure_tensor(image: np.ndarray, sigma: float) -> dict[tuple[int, int], np.ndarray]:
    """The gradient's outer product (gradient at σ/2) smoothed at σ: how strongly and in which directions the
    intensity changes around a voxel."""
    gradient = [ndi.gaussian_filter(image, sigma / 2, order=_order(axis)) for axis in range(3)]
    return {(a, b): ndi.gaussian_filter(gradient[a] * gradient[b], sigma) for a, b in _PAIRS}


def _hessian(image: np.ndarray, sigma: float) -> dict[tuple[int, int], np.ndarray]:
    """Second derivatives of the image smoothed at σ: blobs, tubes and sheets of that size."""
    return {(a, b): ndi.gaussian_filter(image, sigma, order=_order(a, b)) for a, b in _PAIRS}


_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def _order(*axes: int) -> list[int]:
    order = [0, 0, 0]
    for axis in axes:
        order[axis] += 1
    return order


def _eigenvalues(tensor: dict[tuple[int, int], np.ndarray]) -> Iterator[np.ndarray]:
    """The three eigenvalues, largest first, of a field of symmetric 3x3 matrices, in slabs to bound memory."""
    shape = tensor[0, 0].shape
    values = np.empty((3, *shape), np.float32)
    for z in range(0, shape[0], 16):
        part = np.empty((*tensor[0, 0][z : z + 16].shape, 3, 3), np.float32)
        for (a, b), component in tensor.items():
            part[..., a, b] = part[..., b, a] = component[z : z + 16]
        values[:, z : z + 16] = np.moveaxis(np.linalg.eigvalsh(part)[..., ::-1], -1, 0)
    yield from values
