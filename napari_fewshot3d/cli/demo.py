"""`fewshot3d demo`: the whole job on a bundled brain MRI, offline, with a score at the end."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..backends import get_backend
from ..bench.protocol import paint_slices
from ..engine import check_support, resolve_device, run
from ..errors import InputError
from ..masks import dice
from ..sample_data import mni152_brain
from ..support import SupportSet
from ..volume_io import write_image, write_labels
from .progress import ProgressPrinter


def run_demo(out: Path, k: int, backend_name: str, device: str, quiet: bool = False) -> dict[str, float]:
    """Paint k protocol slices per tissue class of the MNI152 T1, segment, write files, print Dice."""
    backend = get_backend(backend_name)
    device = resolve_device(device)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    case = mni152_brain()
    axis = case.image.slicing_axis("axial")
    painted = case.reference.with_array(paint_slices(case.reference.array, case.class_names, axis, k), name="painted")
    support = SupportSet.from_labels(painted, axis, case.class_names)
    check_support(support, backend)
    out.mkdir(parents=True, exist_ok=True)
    printer = ProgressPrinter(quiet)
    printer.say(
        f"MNI152 T1 {case.image.shape} at 2 mm: painted {k} axial slices per class, backend {backend.name} on {device}"
    )
    started = time.perf_counter()
    try:
        result, _ = run(case.image, support, backend, device, printer)
    finally:
        printer.close()
    seconds = time.perf_counter() - started

    write_image(case.image, out / "image.nii.gz")
    write_labels(painted, out / "painted.nii.gz", case.class_names)
    write_labels(case.reference, out / "reference.nii.gz", case.class_names)
    write_labels(result, out / "prediction.seg.nrrd", case.class_names)
    scores = {}
    for value, name in case.class_names.items():
        scores[name] = dice(result.array == value, case.reference.array == value)
    lines = [f"{name}: Dice {score:.3f}" for name, score in scores.items()]
    sys.stdout.write(
        f"{'; '.join(lines)} ({seconds:.1f} s). Files in {out}/: image.nii.gz, painted.nii.gz, "
        "reference.nii.gz, prediction.seg.nrrd\n"
    )
    return scores
