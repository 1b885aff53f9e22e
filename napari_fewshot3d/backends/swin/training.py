"""The sparse-slice fine-tune: a loss that only known voxels can move, and the training loop with
its time budget, early stopping, progress, cancel and (on CUDA) mixed precision."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ...progress import Task
from .network import Schedule, autocast, grad_scaler

#: Smoothing of the training loss that early stopping watches.
EMA = 0.1
#: Relative improvement of the smoothed loss that counts as progress.
MIN_IMPROVEMENT = 0.01


def masked_loss(logits: Any, target: Any, weight: Any, eps: float = 1.0) -> Any:
    """Per-class sigmoid BCE + soft Dice over the voxels whose weight is 1; all tensors (B, C, ...).

    A voxel with weight 0 contributes nothing: neither its target nor its prediction enters any sum, so
    its gradient is exactly zero. Classes with no known voxel in the batch are left out of the mean.
    """
    import torch
    import torch.nn.functional as F

    logits = logits.float()
    dims = (0, *range(2, logits.ndim))
    known = weight.sum(dim=dims)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * weight).sum(dim=dims) / known.clamp(min=1.0)
    prob = torch.sigmoid(logits) * weight
    overlap = (prob * target * weight).sum(dim=dims)
    soft_dice = 1.0 - (2.0 * overlap + eps) / (prob.sum(dim=dims) + (target * weight).sum(dim=dims) + eps)
    present = known > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    return (bce + soft_dice)[present].mean()


@dataclass
class TrainLog:
    """What a fine-tune did, kept with the adapted model."""

    steps: int
    seconds: float
    final_loss: float
    stopped_by: str  # "max_steps", "max_seconds" or "early_stopping"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batch(sampler: Any, augment: Any, size: int, device: str) -> tuple[Any, Any, Any]:
    import torch

    items = [augment(sampler.sample()) if augment is not None else sampler.sample() for _ in range(size)]

    def stack(key: str):
        return torch.stack([torch.as_tensor(np.asarray(i[key]), dtype=torch.float32) for i in items]).to(device)

    return stack("image"), stack("target"), stack("weight")


def learning_rate(schedule: Schedule, step: int, fraction: float) -> float:
    """The rate for ``step`` (0-based) when ``fraction`` of the budget is spent: linear warm-up, then constant
    or cosine-annealed. Annealing follows the budget, not the step count, so that a slow machine that stops
    at its time limit still ends with small steps."""
    rate = schedule.learning_rate
    if step < schedule.warmup_steps:
        rate *= (step + 1) / schedule.warmup_steps
    if schedule.anneal:
        rate *= 0.5 * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))
    return rate


def fine_tune(network: Any, sampler: Any, schedule: Schedule, device: str, task: Task, augment: Any = None) -> TrainLog:
    """Train ``network`` on patches from ``sampler`` until the step limit, the time budget or a plateau."""
    import torch

    optimiser = torch.optim.AdamW(network.parameters(), lr=schedule.learning_rate, weight_decay=1e-5)
    scaler = grad_scaler(device)
    network.train()
    started = time.perf_counter()
    smoothed = best = float("nan")
    since_best, step, stopped_by = 0, 0, "max_steps"
    while step < schedule.max_steps:
        task.check()
        elapsed = time.perf_counter() - started
        if elapsed >= schedule.max_seconds:
            stopped_by = "max_seconds"
            break
        image, target, weight = _batch(sampler, augment, schedule.batch, device)
        spent = max(step / schedule.max_steps, elapsed / schedule.max_seconds)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(schedule, step, spent)
        optimiser.zero_grad(set_to_none=True)
        with autocast(device):
            logits = network(image)
        loss = masked_loss(logits, target, weight)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        step += 1
        value = float(loss.detach())
        smoothed = value if step == 1 else (1 - EMA) * smoothed + EMA * value
        if step == 1 or smoothed < best * (1 - MIN_IMPROVEMENT):
            best, since_best = smoothed, 0
        else:
            since_best += 1
        fraction = max(step / schedule.max_steps, (time.perf_counter() - started) / schedule.max_seconds)
        task.report(fraction, f"fine-tuning: step {step}, loss {smoothed:.3f}")
        if since_best >= schedule.patience:
            stopped_by = "early_stopping"
            break
    network.eval()
    return TrainLog(step, time.perf_counter() - started, smoothed, stopped_by)
