"""The network, its training schedules per device, and mixed precision where it pays (CUDA only)."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace
from typing import Any

from ...errors import InputError

#: MONAI's Swin-UNETR halves each side five times: patch sides must be multiples of this.
SIDE_MULTIPLE = 32


def check_feature_size(feature_size: int) -> int:
    """Swin-UNETR's attention heads (3, 6, 12, 24) split the embedding: its size must be a multiple of 12."""
    if isinstance(feature_size, bool) or not isinstance(feature_size, int) or feature_size < 12 or feature_size % 12:
        raise InputError(f"feature size must be a positive multiple of 12 (12, 24, 48, ...), got {feature_size!r}")
    return feature_size


def check_patch(patch: Any) -> tuple[int, int, int]:
    """Three sides, each a multiple of 32, at least one of them 64 or more.

    With every side 32, the deepest stage is a single voxel and instance normalisation cannot train on it.
    """
    try:
        sides = tuple(int(s) for s in patch)
    except (TypeError, ValueError):
        raise InputError(f"patch must be three sides, got {patch!r}") from None
    if len(sides) != 3 or any(s < SIDE_MULTIPLE or s % SIDE_MULTIPLE for s in sides) or max(sides) < 2 * SIDE_MULTIPLE:
        raise InputError(f"patch sides must be multiples of 32 with at least one of 64 or more, got {patch!r}")
    return sides  # type: ignore[return-value]


def build_network(out_channels: int, feature_size: int, in_channels: int = 1):
    """A MONAI Swin-UNETR for 3D single-channel volumes (imported here so that MONAI loads only when used)."""
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(in_channels=in_channels, out_channels=out_channels, feature_size=check_feature_size(feature_size))


@dataclass(frozen=True)
class Schedule:
    """How long and on what a fine-tune runs. ``infer_roi`` may exceed ``patch``: the network is convolutional
    with windowed attention, and fewer, larger windows are faster on a CPU."""

    feature_size: int
    patch: tuple[int, int, int]
    batch: int
    max_steps: int
    max_seconds: float
    learning_rate: float
    #: Stop when the smoothed training loss has not improved by 1 % for this many steps.
    patience: int
    infer_roi: tuple[int, int, int]
    infer_batch: int
    infer_overlap: float
    #: Steps over which the learning rate rises linearly to ``learning_rate`` (0: from the first step).
    warmup_steps: int = 0
    #: Cosine-anneal the learning rate to 0 over the budget (whichever of steps and seconds runs out first).
    anneal: bool = False
    #: In-plane spacing (mm) that training and prediction run at (see :mod:`.resolution`); 0 keeps the volume's.
    coarse_mm: float = 0.0

    def with_options(self, **options: Any) -> Schedule:
        """This schedule with the options the user set (None means keep)."""
        chosen = {k: v for k, v in options.items() if v is not None}
        unknown = set(chosen) - set(asdict(self))
        if unknown:
            raise InputError(f"unknown schedule option(s): {', '.join(sorted(unknown))}")
        if "patch" in chosen:
            chosen["patch"] = check_patch(chosen["patch"])
        if "feature_size" in chosen:
            check_feature_size(chosen["feature_size"])
        for name in ("max_steps", "batch"):
            if name in chosen and (not isinstance(chosen[name], int) or chosen[name] < 1):
                raise InputError(f"{name.replace('_', '-')} must be a positive integer, got {chosen[name]!r}")
        if "max_seconds" in chosen and not float(chosen["max_seconds"]) > 0:
            raise InputError(f"max-seconds must be positive, got {chosen['max_seconds']!r}")
        return replace(self, **chosen)


#: A GPU fine-tune: the published Swin-UNETR size on 96³ patches, a few minutes at most.
GPU_SCHEDULE = Schedule(
    feature_size=48,
    patch=(96, 96, 96),
    batch=2,
    max_steps=1500,
    max_seconds=600.0,
    learning_rate=2e-4,
    patience=200,
    infer_roi=(96, 96, 96),
    infer_batch=4,
    infer_overlap=0.5,
)

#: A CPU fine-tune of at most five minutes: a small network on a grid coarsened to ~6 mm in plane (a 64×64×32 patch
#: then holds a whole abdominal slice), a short warm-up to a higher rate and cosine annealing over the budget.
#: A step costs ≈2 s on 2 idle cores and 10–20 s on a shared one; see the README for what that buys.
CPU_SCHEDULE = Schedule(
    feature_size=12,
    patch=(64, 64, 32),
    batch=1,
    max_steps=300,
    max_seconds=300.0,
    learning_rate=3e-3,
    patience=300,
    infer_roi=(128, 128, 128),
    infer_batch=1,
    infer_overlap=0.25,
    warmup_steps=3,
    anneal=True,
    coarse_mm=6.0,
)


def schedule_for(device: str) -> Schedule:
    """The GPU schedule on CUDA; the small one elsewhere (CPU, and Apple's MPS, which has no AMP here)."""
    return GPU_SCHEDULE if device.startswith("cuda") else CPU_SCHEDULE


def uses_amp(device: str) -> bool:
    """Mixed precision on CUDA only; CPU training stays float32 (bfloat16 on CPU is untested for training here)."""
    return device.startswith("cuda")


def autocast(device: str):
    """float16 autocast on CUDA, nothing elsewhere."""
    import torch

    if uses_amp(device):
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(device: str):
    """A gradient scaler that is active with AMP and a no-op otherwise."""
    import torch

    return torch.amp.GradScaler("cuda", enabled=uses_amp(device))
