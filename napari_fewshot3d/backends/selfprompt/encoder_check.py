"""The encoder as the backend runs it (its runtime, $FEWSHOT3D_RUNTIME: PyTorch or OpenVINO; bf16 on CPUs with
bf16 units, fp16 on CUDA) against plain PyTorch fp32, measured on the same slices in the same process: a faster
runtime is kept only if the masks it leads to are the same.

Each model encodes the chosen slices, alternating slice by slice (after one untimed slice each, so that neither pays
its first call), and the median time per slice is kept; SAM's decoder, prompted with the box of the reference
structure on each slice, turns each embedding into a mask, and the masks of the runtime are scored against those of
fp32.
"""

from __future__ import annotations

import time

import numpy as np

from ...masks import dice
from ...volume import Volume
from ..base import EncoderClock
from .cache import EmbeddingCache
from .embedder import SliceEmbedder

REFERENCE = "fp32"


def against_fp32(used, reference, window: dict, volume: Volume, labels: np.ndarray, axis: int, slices: int) -> dict:
    """``used`` (the SAM model as the backend runs it) against ``reference`` (the same weights, PyTorch fp32)."""
    others = tuple(a for a in range(3) if a != axis)
    present = np.flatnonzero(np.any(labels != 0, axis=others))
    if present.size == 0:
        raise ValueError("no structure in the labels to prompt the decoder with")
    chosen = sorted({int(present[round(i)]) for i in np.linspace(0, present.size - 1, slices + 1)})
    warm_up, timed = chosen[0], chosen[1:] or chosen
    models = {"runtime": used, "reference": reference}
    embedders = {
        name: SliceEmbedder(model, volume, axis, EmbeddingCache(use_disk=False), window, clock=EncoderClock())
        for name, model in models.items()
    }
    for embedder in embedders.values():
        embedder.get([warm_up])
    # slice by slice, one runtime then the other: a machine whose speed drifts (another job, turbo) drifts for both
    times: dict[str, list[float]] = {name: [] for name in models}
    for index in timed:
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder.get([index])
            times[name].append(time.perf_counter() - started)
    seconds = {name: float(np.median(t)) for name, t in times.items()}
    masks: dict[str, dict[int, np.ndarray]] = {name: {} for name in models}
    for name, embedder in embedders.items():
        for index in timed:
            truth = np.take(labels, index, axis=axis) != 0
            refined = embedder.refine(index, truth)
            masks[name][index] = np.zeros_like(truth) if refined is None else refined
    agreement = [dice(masks["runtime"][i], masks["reference"][i]) for i in timed]
    return {
        "runtime": f"{used.runtime}-{used.precision}",
        "seconds_per_slice": seconds["runtime"],
        "reference": f"torch-{REFERENCE}",
        "reference_seconds_per_slice": seconds["reference"],
        "speedup": seconds["reference"] / seconds["runtime"],
        "mask_dice_vs_reference": float(np.mean(agreement)),
        "slices": timed,
        "device": used.device.type,
    }
