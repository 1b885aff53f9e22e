"""`fewshot3d pretrain`: Volume Fusion pretraining from a folder of unlabelled volumes (see swin/volf.py).

Unlike the other commands, an interrupted pretraining keeps what it saved: the checkpoint is rewritten
every --save-every steps (atomically), and `--resume` continues from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import Cancelled
from .progress import ProgressPrinter


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--volumes", required=True, metavar="DIR", help="folder of unlabelled volumes (searched deeply)"
    )
    parser.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (then use it with --weights)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint at --out")
    parser.add_argument("--steps", type=int, default=1000, help="total steps, counting resumed ones (default 1000)")
    parser.add_argument("--max-seconds", type=float, default=float("inf"), metavar="S", help="stop after S seconds")
    parser.add_argument("--feature-size", type=int, default=48, metavar="N", help="network width, multiple of 12 (48)")
    parser.add_argument(
        "--patch", type=int, nargs=3, default=(96, 96, 96), metavar="N", help="crop sides, multiples of 32 (96 96 96)"
    )
    parser.add_argument("--batch", type=int, default=2, help="crops per step (default 2)")
    parser.add_argument("--save-every", type=int, default=50, metavar="N", help="checkpoint every N steps (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Exit 0 when done; 130 when interrupted, saying which step the checkpoint on disk holds."""
    from ..backends.swin.volf import PretrainConfig, find_volumes, pretrain
    from ..engine import resolve_device
    from ..progress import Task

    config = PretrainConfig(
        volumes=Path(args.volumes),
        out=Path(args.out),
        steps=args.steps,
        max_seconds=args.max_seconds,
        feature_size=args.feature_size,
        patch=tuple(args.patch),
        batch=args.batch,
        save_every=args.save_every,
        resume=args.resume,
        seed=args.seed,
    )
    device = resolve_device(args.device)
    config.check()
    found = find_volumes(config.volumes)
    printer = ProgressPrinter(args.quiet)
    printer.say(f"VolF pretraining on {len(found)} volume(s) on {device}, feature size {config.feature_size}")
    state: dict = {}
    try:
        result = pretrain(config, device, Task(printer), state)
    except (KeyboardInterrupt, Cancelled):
        printer.close()
        saved = state.get("saved_step")
        kept = f"{args.out} holds step {saved}; --resume continues it" if saved else "no checkpoint was written"
        sys.stderr.write(f"error: interrupted; {kept}\n")
        return 130
    finally:
        printer.close()
    printer.say(f"wrote {args.out} [step {result.step}, loss {result.loss:.3f}, {result.seconds:.0f} s on {device}]")
    return 0
