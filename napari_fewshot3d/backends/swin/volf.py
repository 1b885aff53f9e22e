"""Volume Fusion (VolF) self-supervised pretraining: no labels, only volumes.

Two sub-volumes are cropped (from the same or different scans) and mixed voxel by voxel with a fusion
coefficient that takes one of K discrete values (0, 1/(K-1), ..., 1), constant inside random boxes. The
network learns to tell, for every voxel, which coefficient made it: a K-class pseudo-segmentation that
needs both what tissue looks like and where one structure ends, which is what fine-tuning builds on.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic_file import write_atomically
from ...errors import InputError
from ...progress import Task
from .network import autocast, build_network, check_feature_size, check_patch, grad_scaler
from .sampling import modality_of, normalise, pad_to
from .weights import PRETRAIN_FORMAT

#: Discrete fusion coefficients, and so output classes, of the pseudo-segmentation.
FUSION_CLASSES = 5
#: Boxes of one coefficient per sample (besides the background coefficient 0).
MAX_BOXES = 8
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class PretrainConfig:
    volumes: Path
    out: Path
    steps: int = 1000
    max_seconds: float = float("inf")
    feature_size: int = 48
    patch: tuple[int, int, int] = (96, 96, 96)
    batch: int = 2
    learning_rate: float = 1e-4
    save_every: int = 50
    resume: bool = False
    seed: int = 0

    def check(self) -> None:
        """Everything that can be refused before any work, so that bad input writes nothing."""
        check_feature_size(self.feature_size)
        check_patch(self.patch)
        for name in ("steps", "batch", "save_every"):
            if getattr(self, name) < 1:
                raise InputError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.max_seconds > 0:
            raise InputError(f"max-seconds must be positive, got {self.max_seconds}")
        folder = self.out.parent
        if not folder.is_dir():
            raise InputError(f"{self.out}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise InputError(f"{self.out}: folder {folder} is not writable")
        if self.resume and not self.out.is_file():
            raise InputError(f"{self.out}: nothing to resume (no such checkpoint)")
        if not self.resume and self.out.exists():
            raise InputError(f"{self.out} exists: pass --resume to continue it, or choose another path")


def find_volumes(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively); files named like labels or segmentations are left out."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder of volumes")
    found = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(IMAGE_SUFFIXES)
        and not any(w in p.name.lower() for w in ("label", "seg"))
    )
    if not found:
        raise InputError(f"{folder}: no volume found ({', '.join(IMAGE_SUFFIXES)}; names with 'label'/'seg' skipped)")
    return found


def load_volumes(paths: list[Path], patch: tuple[int, int, int], task: Task) -> list[np.ndarray]:
    """Each volume normalised like fine-tuning does, zero-padded up to the patch size."""
    from ...volume_io import read_image

    volumes = []
    for n, path in enumerate(paths):
        task.report(n / len(paths), f"reading {path.name}")
        array = read_image(path).array
        volumes.append(pad_to(normalise(array, modality_of(array)), patch))
    return volumes


def _crop(volume: np.ndarray, patch: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    corner = [int(rng.integers(0, n - p + 1)) for n, p in zip(volume.shape, patch, strict=True)]
    return volume[tuple(slice(c, c + p) for c, p in zip(corner, patch, strict=True))]


def fuse(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, classes: int = FUSION_CLASSES) -> tuple:
    """(fused image, coefficient class per voxel): ``a * c/(K-1) + b * (1 - c/(K-1))``, class c constant in boxes
    and 0 (pure ``b``) elsewhere."""
    shape = a.shape
    label = np.zeros(shape, np.int64)
    for _ in range(int(rng.integers(1, MAX_BOXES + 1))):
        size = [int(rng.integers(max(p // 8, 1), p // 2 + 1)) for p in shape]
        corner = [int(rng.integers(0, p - s + 1)) for p, s in zip(shape, size, strict=True)]
        label[tuple(slice(c, c + s) for c, s in zip(corner, size, strict=True))] = int(rng.integers(1, classes))
    alpha = label.astype(np.float32) / (classes - 1)
    return (alpha * a + (1.0 - alpha) * b).astype(np.float32), label


def fusion_sample(
    volumes: list[np.ndarray], patch: tuple[int, int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two random crops (of the same or different volumes), fused."""
    a = _crop(volumes[int(rng.integers(len(volumes)))], patch, rng)
    b = _crop(volumes[int(rng.integers(len(volumes)))], patch, rng)
    return fuse(a, b, rng)


def _save(path: Path, payload: dict[str, Any]) -> None:
    """Write next to the target, then rename: an interrupted save never leaves a broken checkpoint."""
    import torch

    write_atomically(path, lambda partial: torch.save(payload, partial), "checkpoint")


@dataclass
class PretrainResult:
    step: int
    seconds: float
    loss: float
    saved_step: int


def pretrain(config: PretrainConfig, device: str, task: Task, progress_state: dict | None = None) -> PretrainResult:
    """Run VolF until ``config.steps`` (counting steps of a resumed checkpoint) or the time budget.

    ``progress_state["saved_step"]`` always names the step of the checkpoint on disk, so that a front end
    can tell the user what an interruption keeps.
    """
    import torch
    from monai.losses import DiceCELoss

    config.check()
    paths = find_volumes(config.volumes)
    state = progress_state if progress_state is not None else {}
    network = build_network(FUSION_CLASSES, config.feature_size)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-5)
    step = 0
    if config.resume:
        step = _resume(config, network, optimiser)
    state["saved_step"] = step if config.resume else None
    volumes = load_volumes(paths, config.patch, task.sub(0.0, 0.05))
    network.to(device)
    _optimiser_to(optimiser, device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    scaler = grad_scaler(device)
    rng = np.random.default_rng([config.seed, step])  # a resumed run draws new samples, reproducibly
    training = task.sub(0.05, 1.0)
    started, smoothed, first = time.perf_counter(), float("nan"), step

    def checkpoint() -> None:
        payload = {
            "format": PRETRAIN_FORMAT,
            "version": 1,
            "step": step,
            "feature_size": config.feature_size,
            "classes": FUSION_CLASSES,
            "patch": list(config.patch),
            "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
            "optimizer": optimiser.state_dict(),
        }
        _save(config.out, payload)
        state["saved_step"] = step

    network.train()
    while step < config.steps and time.perf_counter() - started < config.max_seconds:
        pairs = [fusion_sample(volumes, config.patch, rng) for _ in range(config.batch)]
        image = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None]).to(device)
        label = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None]).to(device)
        optimiser.zero_grad(set_to_none=True)
        with autocast(device):
            logits = network(image)
        loss = loss_fn(logits.float(), label)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        step += 1
        value = float(loss.detach())
        smoothed = value if step == first + 1 else 0.9 * smoothed + 0.1 * value
        done = max((step - first) / max(config.steps - first, 1), (time.perf_counter() - started) / config.max_seconds)
        training.report(done, f"VolF step {step}/{config.steps}: loss {smoothed:.3f}")
        if step % config.save_every == 0:
            checkpoint()
    if state.get("saved_step") != step:
        checkpoint()
    return PretrainResult(step, time.perf_counter() - started, smoothed, step)


def _resume(config: PretrainConfig, network: Any, optimiser: Any) -> int:
    import torch

    try:
        raw = torch.load(config.out, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{config.out}: cannot be resumed ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or raw.get("format") != PRETRAIN_FORMAT:
        raise InputError(f"{config.out}: not a checkpoint written by fewshot3d pretrain")
    if raw.get("feature_size") != config.feature_size:
        raise InputError(f"{config.out}: feature size {raw.get('feature_size')}, not {config.feature_size}")
    network.load_state_dict(raw["state_dict"])
    optimiser.load_state_dict(raw["optimizer"])
    return int(raw["step"])


def _optimiser_to(optimiser: Any, device: str) -> None:
    """A resumed optimiser's moments were loaded on the CPU; they must live where the parameters do."""
    for values in optimiser.state.values():
        for key, value in values.items():
            if hasattr(value, "to") and key != "step":
                values[key] = value.to(device)
