"""`fewshot3d`: the engine from a terminal or a script.

Contract (other tools rely on it): progress goes to stderr; success exits 0; bad input exits 2
with a single line starting ``error:`` and writes nothing; an interrupted run exits 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .. import __version__
from ..backends import DEFAULT_BACKEND, available_backends, get_backend
from ..bench.run import run_bench
from ..cohort import is_cohort
from ..engine import (
    DEVICES,
    WARNINGS,
    apply_model,
    check_applicable,
    check_can_save,
    check_support,
    load_model,
    resolve_device,
    run,
    save_model,
)
from ..errors import Cancelled, InputError
from ..support import SupportSet, background_in
from ..volume import AXIS_NAMES, resample_onto_grid
from ..volume_io import check_writable, check_writable_for, read_image, read_labels, write_labels
from .bench import add_bench_arguments, config_from_args
from .cohort import add_cohort_arguments, cmd_apply_cohort
from .options import add_backend_arguments, routed_options
from .pretrain import add_pretrain_arguments, cmd_pretrain
from .progress import ProgressPrinter


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as the one `error:` line of the contract."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto: cuda, mps, cpu)")


def _add_series(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--series", metavar="UID", help="Series Instance UID to read when the DICOM folder holds several series"
    )


def _read_input(path: str, series: str | None, out: str, printer: ProgressPrinter):
    """The image, checked against the output format (a DICOM SEG needs a DICOM series), its notes said."""
    image = read_image(path, series)
    check_writable_for(image, out)
    for note in image.metadata.get("notes", ()):
        printer.say(f"note: {note}")
    return image


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fewshot3d", description="Turn a few painted slices into a 3D segmentation.")
    parser.add_argument("--version", action="version", version=f"fewshot3d {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    seg = commands.add_parser("segment", help="adapt to painted slices and segment the whole volume")
    seg.add_argument("image", help="image file (.nii.gz, .nrrd, .mha, ...) or DICOM series folder")
    seg.add_argument(
        "--support", required=True, help="labels on the image's grid, painted on a few slices (or a DICOM SEG)"
    )
    seg.add_argument(
        "--out", required=True, help="output labels (.nii.gz, .nii, .nrrd, .seg.nrrd; .dcm: DICOM SEG, DICOM input)"
    )
    _add_series(seg)
    seg.add_argument("--backend", default=DEFAULT_BACKEND, help=f"one of {', '.join(available_backends())}")
    _add_device(seg)
    seg.add_argument("--axis", default="axial", help="slicing axis of the painted slices: axial, coronal, sagittal")
    seg.add_argument(
        "--background-label",
        type=int,
        metavar="N",
        help="label value of background strokes (scribbles): a slice holding it counts only where it is painted "
        "(default: a class named 'background' in the support file, else none)",
    )
    seg.add_argument("--save-model", metavar="MODEL", help="also save the adapted model, for `fewshot3d apply`")
    seg.add_argument("--quiet", action="store_true", help="no progress output")
    add_backend_arguments(seg)

    app = commands.add_parser("apply", help="segment volumes with a saved adapted model (one, or a cohort on Dask)")
    app.add_argument("model", help="model file written by `segment --save-model`")
    app.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image file or DICOM series folder; several, a folder of images or a CSV/TSV list make a cohort",
    )
    app.add_argument(
        "--out",
        required=True,
        help="output labels (.nii.gz, .nii, .nrrd, .seg.nrrd; .dcm: DICOM SEG, DICOM input); for a cohort, a folder",
    )
    _add_series(app)
    _add_device(app)
    app.add_argument("--quiet", action="store_true", help="no progress output")
    app.add_argument(
        "--force",
        action="store_true",
        help="apply even to another modality than the model was adapted on (the result is unreliable)",
    )
    add_cohort_arguments(app)

    demo = commands.add_parser("demo", help="paint k slices of a bundled brain MRI, segment it, print Dice")
    demo.add_argument("--k", type=int, default=3, help="painted slices per structure (default 3)")
    demo.add_argument("--backend", default=DEFAULT_BACKEND, help=f"one of {', '.join(available_backends())}")
    _add_device(demo)
    demo.add_argument("--out", default="fewshot3d-demo", help="folder for image, painted slices and result")
    demo.add_argument("--quiet", action="store_true", help="no progress output")

    bench = commands.add_parser("bench", help="benchmark backends on cases with reference labels (GUIDE §5)")
    add_bench_arguments(bench)
    add_backend_arguments(bench)

    pre = commands.add_parser("pretrain", help="Volume Fusion self-supervised pretraining of Swin-UNETR weights")
    add_pretrain_arguments(pre)
    _add_device(pre)
    return parser


def cmd_segment(args: argparse.Namespace) -> None:
    backend = get_backend(args.backend, **routed_options([args.backend], args)[args.backend])
    device = resolve_device(args.device)
    if args.axis not in AXIS_NAMES:
        raise InputError(f"unknown axis {args.axis!r}: choose axial, coronal or sagittal")
    check_writable(args.out)
    if args.save_model:
        check_can_save(backend)
        _check_model_writable(args.save_model)
    printer = ProgressPrinter(args.quiet)
    image = _read_input(args.image, args.series, args.out, printer)
    labels = resample_onto_grid(read_labels(args.support, reference=image), image, what="support labels")
    background = args.background_label
    if background is None:
        background = background_in(labels.metadata.get("class_names", {}))
    support = SupportSet.from_labels(labels, args.axis, background=background)
    check_support(support, backend)

    try:
        result, model = run(image, support, backend, device, printer)
    finally:
        printer.close()
    write_labels(result, args.out, support.class_names, support.class_colors)
    if args.save_model:
        save_model(model, args.save_model)
    classes = ", ".join(f"{c.name} ({c.value}): {len(c.slices)} slices" for c in support.classes)
    if support.partial_slices:
        classes += f"; {len(support.partial_slices)} scribbled (background label {support.background})"
    printer.say(
        f"wrote {args.out} [{backend.name} on {device}; {classes}; {time.perf_counter() - printer.started:.1f} s]"
    )


def cmd_apply(args: argparse.Namespace) -> int | None:
    if is_cohort(args.inputs):
        return cmd_apply_cohort(args)
    device = resolve_device(args.device)
    check_writable(args.out)
    model = load_model(args.model)
    printer = ProgressPrinter(args.quiet)
    image = _read_input(args.inputs[0], args.series, args.out, printer)
    check_applicable(model, image, args.force, "--force")  # a refusal is one error line, before any work
    try:
        result = apply_model(model, image, device=device, progress=printer, force=args.force)
    finally:
        printer.close()
    for warning in result.metadata.get(WARNINGS, ()):
        sys.stderr.write(f"warning: {warning}\n")  # even with --quiet: the user must know
    write_labels(result, args.out, model.class_names)
    printer.say(f"wrote {args.out} [{model.backend_name} on {device}; {time.perf_counter() - printer.started:.1f} s]")
    return None


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(args.out), args.k, args.backend, args.device, quiet=args.quiet)


def cmd_bench(args: argparse.Namespace) -> None:
    from ..bench.report import summary

    results = run_bench(config_from_args(args))
    sys.stdout.write(summary(results))
    if not args.quiet:
        sys.stderr.write(f"wrote results.json, results.md, dice_vs_k.png, time_split.png in {args.out}/\n")


def _check_model_writable(path: str) -> None:
    folder = Path(path).parent
    if not folder.is_dir():
        raise InputError(f"{path}: model folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{path}: model file is not writable")


COMMANDS = {"segment": cmd_segment, "apply": cmd_apply, "demo": cmd_demo, "bench": cmd_bench, "pretrain": cmd_pretrain}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = COMMANDS[args.command](args)
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except (Cancelled, KeyboardInterrupt):
        sys.stderr.write("error: interrupted; nothing was written\n")
        return 130
    except MemoryError:
        sys.stderr.write("error: out of memory; try a smaller volume or crop it\n")
        return 1
    except Exception as exc:
        if os.environ.get("FEWSHOT3D_DEBUG"):
            raise
        sys.stderr.write(
            f"error: unexpected failure ({type(exc).__name__}: {exc}); rerun with FEWSHOT3D_DEBUG=1 for details\n"
        )
        return 1
    return code or 0


if __name__ == "__main__":
    raise SystemExit(main())
