"""The `bench` command's options, turned into a :class:`BenchConfig` (the bench itself knows no command line)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from ..backends import DEFAULT_BACKEND, available_backends
from ..bench.cases import FALLBACK_STRUCTURES
from ..bench.run import BASELINE, PEERS, BenchConfig, bench_backends
from ..engine import DEVICES
from .options import options_from_args, routed_options


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The `bench` subcommand's options (kept here so that cli.py only wires the command)."""
    parser.add_argument("--data", required=True, help="folder of cases: subfolders with image.* and reference_labels.*")
    parser.add_argument("--cases", nargs="+", metavar="CASE", help="case folder names (default: every case)")
    parser.add_argument(
        "--structures",
        nargs="+",
        metavar="NAME",
        help=f"class names from labels.json (default: those of {', '.join(FALLBACK_STRUCTURES)} a case has; "
        "per-case lists in bench.cases.DEFAULT_STRUCTURES)",
    )
    parser.add_argument("--k", nargs="+", type=int, default=[1, 3, 5], help="painted slices per structure (1 3 5)")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=[DEFAULT_BACKEND],
        metavar="NAME",
        help=f"any of {', '.join(available_backends())} (default {DEFAULT_BACKEND}); the peers are added",
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        default=list(PEERS),
        metavar="NAME",
        help=f"run beside them in the same bench (default {' '.join(PEERS)}); {BASELINE} always runs",
    )
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    parser.add_argument("--axis", default="axial", help="slicing axis of the painted slices (default axial)")
    parser.add_argument("--out", default="bench_results", help="results folder (default bench_results/)")
    parser.add_argument(
        "--random-seeds", nargs="+", type=int, default=[], metavar="SEED", help="also k random slices per seed"
    )
    parser.add_argument(
        "--spacing",
        type=float,
        metavar="MM",
        help="resample every case (image and reference) to cubic voxels of MM mm first: time and memory on a finer "
        "grid (the report says it is resampled)",
    )
    parser.add_argument(
        "--scribbles",
        action="store_true",
        help="also paint each protocol slice as strokes (one inside each structure, arcs around it) instead of whole",
    )
    parser.add_argument("--multiclass", action="store_true", help="paint all structures of a case at once")
    parser.add_argument("--save-predictions", action="store_true", help="write predictions and painted support")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-apply",
        dest="apply",
        action="store_false",
        help="skip the apply section (saved models applied to the same case, another grid and the other cases)",
    )


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The bench's configuration; an option no chosen backend takes is an error naming its flag."""
    routed_options(bench_backends(args.peers, args.backends), args)
    values = {f.name: getattr(args, f.name) for f in fields(BenchConfig) if f.name != "backend_options"}
    return BenchConfig(
        **values
        | {"data": Path(args.data), "out": Path(args.out), "k": list(dict.fromkeys(args.k))}
        | {"backend_options": options_from_args(args)}
    )
