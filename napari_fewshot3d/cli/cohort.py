"""`fewshot3d apply MODEL INPUT [INPUT ...] --out FOLDER`: the cohort options, a bar over volumes, the summary.

Exit codes follow the CLI's contract, plus 3: the run ended but some inputs failed (each named in the summary).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..cohort import FAILED, SKIPPED, Outcome, expand_inputs, output_paths, run_cohort, summary
from ..engine import load_model
from ..errors import InputError
from ..volume_io import LABEL_FORMATS

#: Exit code of a cohort in which some inputs failed.
SOME_FAILED = 3


def add_cohort_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cohorts (several inputs, a folder of images or a CSV/TSV list)")
    group.add_argument("--workers", type=int, help="workers of the local Dask cluster (default: sized to the machine)")
    group.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask cluster, e.g. tcp://host:8786")
    group.add_argument("--overwrite", action="store_true", help="redo inputs whose output exists (default: skip)")
    group.add_argument(
        "--format", default=".nii.gz", choices=LABEL_FORMATS, help="output format in the folder (default .nii.gz)"
    )


class VolumeProgress:
    """One bar over volumes on a terminal; a line per finished volume in a log."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="volume", leave=False)

    def __call__(self, outcome: Outcome, finished: int, total: int) -> None:
        if self.quiet:
            return
        name = Path(outcome.input).name
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{outcome.status} {name}"[:40])
            if outcome.status == FAILED:
                self.bar.write(f"failed: {outcome.input}: {outcome.reason}", file=sys.stderr)
            for warning in outcome.warnings:
                self.bar.write(f"warning: {outcome.input}: {warning}", file=sys.stderr)
            return
        detail = f": {outcome.reason}" if outcome.status in (FAILED, SKIPPED) else f" ({outcome.seconds:.1f} s)"
        sys.stderr.write(f"[{finished:>{len(str(total))}}/{total}] {outcome.status} {name}{detail}\n")
        for warning in outcome.warnings:
            sys.stderr.write(f"warning: {outcome.input}: {warning}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_apply_cohort(args: argparse.Namespace) -> int:
    """Check everything a user can get wrong before starting a cluster; then run and summarise."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: for several inputs --out is a folder, and this is a file")
    if not out.parent.is_dir():
        raise InputError(f"{out}: its parent folder {out.parent} does not exist")
    if getattr(args, "series", None):
        raise InputError("--series chooses the series of one DICOM folder; a cohort reads the largest of each")
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers must be 1 or more")
    if args.workers is not None and args.scheduler:
        raise InputError("--workers sizes a local cluster; with --scheduler the running cluster has its own")
    load_model(args.model)  # a bad model file is one error line, not one failure per input
    inputs = expand_inputs(args.inputs)
    outputs = output_paths(inputs, out, args.format)
    out.mkdir(exist_ok=True)
    started = time.perf_counter()
    progress = VolumeProgress(len(inputs), args.quiet)
    try:
        outcomes = run_cohort(
            args.model,
            inputs,
            outputs,
            device=args.device,
            workers=args.workers,
            scheduler=args.scheduler,
            overwrite=args.overwrite,
            force=args.force,
            on_outcome=progress,
            say=lambda text: sys.stderr.write(text + "\n"),
        )
    finally:
        progress.close()

    sys.stderr.write(summary(outcomes, time.perf_counter() - started) + "\n")
    return SOME_FAILED if any(o.status == FAILED for o in outcomes) else 0
