"""Starting weights for the network: the public MONAI self-supervised Swin-ViT encoder checkpoint
(``model_swinvit.pt``) or a checkpoint written by ``fewshot3d pretrain``, with a report of what loaded.

The public checkpoint holds the encoder only, under ``state_dict`` with a ``module.`` prefix where the
network has ``swinViT.``, and calls the transformer MLP's layers ``fc1``/``fc2`` where MONAI's blocks say
``linear1``/``linear2``. A pretrain checkpoint holds the whole network; its output layer predicts the
fusion classes, so it never fits a segmentation head and is left out.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import InputError

log = logging.getLogger(__name__)

PRETRAIN_FORMAT = "fewshot3d-volf-pretrain"
#: The tensor whose first dimension is the feature size, in both checkpoint formats (after renaming).
PATCH_EMBED = "swinViT.patch_embed.proj.weight"
#: Layers that depend on the task (number of classes), never taken from a checkpoint.
TASK_LAYERS = ("out.",)


@dataclass
class Checkpoint:
    """Tensors renamed to the network's names, and where they came from."""

    path: str
    kind: str  # "monai-ssl" or "volf"
    tensors: dict[str, Any]
    feature_size: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class WeightReport:
    """Which of the network's tensors came from the checkpoint, and which did not."""

    path: str
    kind: str
    loaded: list[str]
    missing: list[str]  # network tensors not taken from the checkpoint (trained from scratch)
    unused: list[str]  # checkpoint tensors the network has no place for
    mismatched: list[str]  # same name, other shape

    def summary(self) -> str:
        """One line a user reads in the progress output."""
        source = "MONAI self-supervised Swin-ViT encoder" if self.kind == "monai-ssl" else "VolF pretraining"
        parts = [f"weights {Path(self.path).name} ({source}): loaded {len(self.loaded)} tensors"]
        if self.missing:
            parts.append(f"{len(self.missing)} start from scratch ({_groups(self.missing)})")
        if self.unused:
            parts.append(f"{len(self.unused)} in the file unused")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} with another shape ({_groups(self.mismatched)})")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "loaded": len(self.loaded),
            "missing": self.missing,
            "unused": self.unused,
            "mismatched": self.mismatched,
        }


def _groups(names: list[str]) -> str:
    """The top-level modules of some tensor names: 'decoder1, encoder1, out'."""
    return ", ".join(sorted({n.split(".")[0] for n in names}))


def _from_monai_ssl(name: str) -> str:
    """A public SSL checkpoint's key as the network names it."""
    name = "swinViT." + name.removeprefix("module.")
    return name.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read either checkpoint format safely (``weights_only``: tensors and plain values, never code)."""
    import torch

    path = str(path)
    if not Path(path).is_file():
        raise InputError(f"{path}: no such weights file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a zip that is not torch's, a pickle with code in it, a truncated file
        raise InputError(f"{path}: not a PyTorch checkpoint that can be read safely ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("state_dict"), dict):
        raise InputError(f"{path}: no 'state_dict' in the checkpoint (expected model_swinvit.pt or a pretrain output)")
    state = {k: v for k, v in raw["state_dict"].items() if isinstance(v, torch.Tensor)}
    if raw.get("format") == PRETRAIN_FORMAT:
        kind, tensors = "volf", dict(state)
        meta = {k: raw[k] for k in ("step", "feature_size", "classes", "patch") if k in raw}
    elif state and all(k.startswith("module.") for k in state):
        kind, tensors, meta = "monai-ssl", {_from_monai_ssl(k): v for k, v in state.items()}, {}
    else:
        raise InputError(f"{path}: unknown checkpoint layout (expected model_swinvit.pt or a pretrain output)")
    if PATCH_EMBED not in tensors or tensors[PATCH_EMBED].ndim != 5:
        raise InputError(f"{path}: no Swin-ViT patch embedding in the checkpoint; not Swin-UNETR weights")
    return Checkpoint(path, kind, tensors, int(tensors[PATCH_EMBED].shape[0]), meta)


def load_into(network: Any, checkpoint: Checkpoint) -> WeightReport:
    """Copy every tensor whose name and shape match; the task's output layer always starts fresh."""
    own = network.state_dict()
    loaded, mismatched = {}, []
    for name, tensor in checkpoint.tensors.items():
        if name not in own or name.startswith(TASK_LAYERS):
            continue
        if tuple(own[name].shape) == tuple(tensor.shape):
            loaded[name] = tensor
        else:
            mismatched.append(name)
    if not loaded:
        raise InputError(f"{checkpoint.path}: none of its tensors fits this network")
    network.load_state_dict(own | loaded)
    report = WeightReport(
        checkpoint.path,
        checkpoint.kind,
        loaded=sorted(loaded),
        missing=sorted(n for n in own if n not in loaded and n not in mismatched),
        unused=sorted(n for n in checkpoint.tensors if n not in own),
        mismatched=sorted(mismatched),
    )
    log.info(report.summary())
    return report
