"""An ilastik-style 3D filter bank at voxel resolution: what a pixel classifier sees at every voxel.

Per scale σ (in voxels of an isotropic working grid, so that a filter is round in millimetres whatever the scan's
voxel size): Gaussian smoothing, Laplacian of Gaussian, Gaussian gradient magnitude, difference of Gaussians,
structure-tensor eigenvalues and Hessian-of-Gaussian eigenvalues — ilastik's default set, 61 features with the
Gaussian at σ 0.3 added. Features are stored float16 (a random forest's thresholds do not need more) so a
2-million-voxel grid holds its 61 features in ~0.25 GB.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

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
#: Threads the filter bank's scales are computed on (each holds ~15 float32 copies of the grid while it runs).
MAX_THREADS = 3
#: Planes per slab of the eigenvalue computation (its temporaries are a few planes only).
SLAB = 16


def feature_names() -> list[str]:
    """The names of :func:`filter_bank`'s features, in its order (for reports and saved models)."""
    names = [f"gaussian {FINEST}"]
    for sigma in SIGMAS:
        names += [f"gaussian {sigma}", f"log {sigma}", f"gradient {sigma}", f"dog {sigma}"]
        names += [f"structure tensor {n} {sigma}" for n in range(3)]
        names += [f"hessian {n} {sigma}" for n in range(3)]
    return names


def filter_bank(image: np.ndarray, task: Task | None = None) -> np.ndarray:
    """``(N_FEATURES, *image.shape)`` float16 features of a float32 image in [0, 1]; progress per scale.

    The scales are computed side by side on up to ``MAX_THREADS`` threads (SciPy's filters let go of the GIL for
    most of their work: measured 1.5x on 2 cores); each writes its own rows, so memory is a few scales' temporaries.
    A cancel stops every scale at its next feature."""
    task = task or Task()
    image = np.asarray(image, np.float32)
    out = np.empty((N_FEATURES, *image.shape), np.float16)
    out[0] = ndi.gaussian_filter(image, FINEST)
    stop = threading.Event()

    def scale(n: int) -> None:
        for row, feature in enumerate(_features_at(image, SIGMAS[n]), start=1 + PER_SIGMA * n):
            if stop.is_set():
                return
            out[row] = feature

    workers = min(MAX_THREADS, os.cpu_count() or 1, len(SIGMAS))
    with ThreadPoolExecutor(workers, thread_name_prefix="filter-bank") as pool:
        pending = [pool.submit(scale, n) for n in range(len(SIGMAS))]
        try:
            for done, future in enumerate(as_completed(pending)):
                future.result()
                task.report((done + 1) / len(SIGMAS), f"image features: {done + 1} of {len(SIGMAS)} scales")
        finally:
            stop.set()  # cancelled or failed: the other scales stop at their next feature
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
    for z in range(0, shape[0], SLAB):
        part = {pair: component[z : z + SLAB] for pair, component in tensor.items()}
        values[:, z : z + SLAB] = symmetric_eigenvalues(part)
    yield from values


def symmetric_eigenvalues(m: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
    """Eigenvalues (largest first, stacked on a new first axis) of symmetric 3x3 matrices given by their six
    upper components, in closed form (the trigonometric solution of the characteristic cubic). Measured on 2 million
    float32 matrices: 18x faster than LAPACK's per-matrix solver (0.08 vs 1.57 s), largest error 6e-5 of the
    largest eigenvalue, nearly-equal eigenvalues included — finer than the float16 the features are stored in."""
    q = (m[0, 0] + m[1, 1] + m[2, 2]) / 3.0
    off = m[0, 1] ** 2 + m[0, 2] ** 2 + m[1, 2] ** 2
    d0, d1, d2 = m[0, 0] - q, m[1, 1] - q, m[2, 2] - q
    p = np.sqrt((d0**2 + d1**2 + d2**2 + 2.0 * off) / 6.0)
    scale = np.where(p > 0, 1.0 / np.where(p > 0, p, 1.0), 0.0)  # p = 0: a multiple of the identity
    b01, b02, b12 = m[0, 1] * scale, m[0, 2] * scale, m[1, 2] * scale
    b0, b1, b2 = d0 * scale, d1 * scale, d2 * scale
    half_det = 0.5 * (b0 * (b1 * b2 - b12**2) - b01 * (b01 * b2 - b12 * b02) + b02 * (b01 * b12 - b1 * b02))
    phi = np.arccos(np.clip(half_det, -1.0, 1.0)) / 3.0
    largest = q + 2.0 * p * np.cos(phi)
    smallest = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    return np.stack([largest, 3.0 * q - largest - smallest, smallest])
