"""Backend options on the command line (`segment` and `bench` share them), routed to the backends that take them.

An option goes to every chosen backend whose constructor takes it; one that no chosen backend takes is an
input error, so that a typo or a wrong backend never silently runs without the user's option.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .backends import available_backends, backend_options
from .errors import InputError

#: backend keyword -> command-line flag
FLAGS = {
    "checkpoint": "--sam-checkpoint",
    "model_type": "--sam-type",
    "window": "--window/--modality",
    "weights": "--weights",
    "feature_size": "--feature-size",
    "max_steps": "--max-steps",
    "max_seconds": "--max-seconds",
}


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    sam = parser.add_argument_group("backend options (selfprompt-sam)")
    sam.add_argument(
        "--sam-checkpoint", dest="checkpoint", metavar="PATH", help="an official SAM checkpoint instead of LiteMedSAM"
    )
    sam.add_argument("--sam-type", dest="model_type", choices=("vit_b", "vit_l", "vit_h"), help="its architecture")
    sam.add_argument(
        "--window", type=_window, metavar="LEVEL,WIDTH", help="CT window in HU (default 40,400 soft tissue)"
    )
    sam.add_argument("--modality", choices=("auto", "ct", "mr"), help="intensity scaling (default auto-detected)")
    group = parser.add_argument_group("backend options (swin-unetr)")
    group.add_argument(
        "--weights", metavar="PATH", help="starting weights: MONAI's model_swinvit.pt or a `fewshot3d pretrain` output"
    )
    group.add_argument("--feature-size", type=int, metavar="N", help="network width, a multiple of 12 (CPU 12, GPU 48)")
    group.add_argument("--max-steps", type=int, metavar="N", help="fine-tuning steps at most")
    group.add_argument("--max-seconds", type=float, metavar="S", help="fine-tuning time budget in seconds")


def _window(text: str) -> dict[str, float]:
    try:
        level, width = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LEVEL,WIDTH (e.g. 60,160)") from None
    return {"level": level, "width": width}


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The backend options the user set (unset ones are left to each backend's defaults)."""
    options = {key: getattr(args, key) for key in FLAGS if getattr(args, key, None) is not None}
    if getattr(args, "modality", None):
        options["window"] = dict(options.get("window", {}), modality=args.modality)
    return options


def route_options(backends: Sequence[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per backend, the options it takes; an option none of them takes is an input error."""
    taken = {name: backend_options(name) for name in backends}
    for key in options:
        if not any(key in keys for keys in taken.values()):
            owners = [name for name in available_backends() if key in backend_options(name)]
            whose = f" (it is one of {', '.join(owners)}'s)" if owners else ""
            raise InputError(f"{FLAGS.get(key, key)} is not an option of {', '.join(backends)}{whose}")
    return {name: {k: v for k, v in options.items() if k in taken[name]} for name in backends}
