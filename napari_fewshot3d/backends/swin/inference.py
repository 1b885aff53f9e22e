"""Whole-volume prediction with MONAI's sliding-window inferer, cancellable between windows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...progress import Task
from .network import SIDE_MULTIPLE, autocast


def window_count(shape: tuple[int, ...], roi: tuple[int, ...], overlap: float) -> int:
    """How many windows the inferer visits (its own spacing rule), for an honest progress bar."""
    count = 1
    for n, r in zip(shape, roi, strict=True):
        step = max(int(r * (1 - overlap)), 1)
        count *= 1 if n <= r else math.ceil((n - r) / step) + 1
    return count


def window_for(shape: tuple[int, ...], roi: tuple[int, ...]) -> tuple[int, ...]:
    """No window larger than the image needs (rounded up to the network's multiple of 32: less padding to
    compute), but never 32 on every side, where the deepest stage would be a single voxel."""
    sides = [min(r, -(-n // SIDE_MULTIPLE) * SIDE_MULTIPLE) for r, n in zip(roi, shape, strict=True)]
    if max(sides) < 2 * SIDE_MULTIPLE:
        sides[int(np.argmax(shape))] = 2 * SIDE_MULTIPLE
    return tuple(sides)


def predict_probabilities(
    network: Any,
    image: np.ndarray,
    roi: tuple[int, int, int],
    batch: int,
    overlap: float,
    device: str,
    task: Task,
) -> np.ndarray:
    """Per-class sigmoid probabilities (C, *image.shape) for a normalised image."""
    import torch
    from monai.inferers import sliding_window_inference

    roi = window_for(image.shape, roi)
    total = max(window_count(image.shape, roi, overlap), 1)
    done = 0

    def predictor(windows: Any) -> Any:
        nonlocal done
        task.check()
        with autocast(device):
            out = network(windows)
        done += windows.shape[0]
        task.report(done / total, f"segmenting: window {min(done, total)} of {total}")
        return out.float()

    network.eval()
    tensor = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)[None, None].to(device)
    with torch.no_grad():
        logits = sliding_window_inference(
            tensor, roi_size=roi, sw_batch_size=batch, predictor=predictor, overlap=overlap, mode="gaussian"
        )
    return torch.sigmoid(logits[0]).cpu().numpy()


def to_labels(probabilities: np.ndarray, values: list[int]) -> np.ndarray:
    """Each voxel takes the most probable class where that class's probability passes 0.5, else 0."""
    best = probabilities.argmax(axis=0)
    labels = np.asarray(values)[best]
    labels[probabilities.max(axis=0) <= 0.5] = 0
    return labels


def connected_to_painting(labels: np.ndarray, painted: np.ndarray, values: list[int]) -> np.ndarray:
    """Per class, only the 3D connected parts of the prediction that touch what was painted of that class.

    Trained on a few slices, the network has never been told what most of the body is not, and marks
    look-alike tissue far from the structure; the painting says where the structure is.
    """
    from scipy import ndimage as ndi

    kept = np.zeros_like(labels)
    for value in values:
        components, count = ndi.label(labels == value)
        if count == 0:
            continue
        touching = np.unique(components[(painted == value) & (components > 0)])
        kept[np.isin(components, touching[touching > 0])] = value
    return kept
