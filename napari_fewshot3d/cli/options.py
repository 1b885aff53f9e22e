"""Backend options on the command line (`segment` and `bench` share them).

Each goes to every chosen backend whose constructor takes it (``backends.route_options``); one that no chosen
backend takes is an input error, so that a typo or a wrong backend never silently runs without the user's option.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..backends import route_options

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
    sam = parser.add_argument_group("backend options (selfprompt-sam, and hybrid for its SAM learner)")
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


def routed_options(backends: list[str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per backend, the options the user set that it takes; errors name the command-line flag."""
    return route_options(backends, options_from_args(args), FLAGS)
