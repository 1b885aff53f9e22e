"""Apply one adapted model to a cohort of volumes on Dask: a local cluster sized to the machine, or a running one.

Applying is a pure function of (model file, volume), so each volume is one task: it reads its input, applies
the model and writes its output (atomically) where the worker can write. The model file is sent to the
workers once, as bytes. A task never raises for a bad input: it returns a failed :class:`Outcome` with a
one-line reason, so one unreadable scan does not stop the others.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, describe
from .volume_io import LABEL_FORMATS, format_of, image_stem, looks_like_dicom_folder

#: Image files a folder of inputs may hold (DICOM series are folders of their own).
IMAGE_FORMATS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
LIST_FORMATS = (".csv", ".tsv")
#: Memory one worker may need at its peak (selfprompt-sam on a clinical CT): caps the default worker count.
WORKER_MEMORY_BYTES = 3 * 1024**3

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
INSTALL_DASK = "pip install 'napari-fewshot3d[cohort]'"


@dataclass
class Outcome:
    """What became of one input."""

    input: str
    output: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    #: What the user must be told about a written result (a class not found, a forced modality).
    warnings: tuple[str, ...] = ()


def is_cohort(items: Sequence[str]) -> bool:
    """More than one input, a folder of images, or a list file: OUT is then a folder."""
    if len(items) != 1:
        return True
    path = Path(items[0])
    return format_of(path) in LIST_FORMATS or (path.is_dir() and not looks_like_dicom_folder(path))


def expand_inputs(items: Sequence[str]) -> list[Path]:
    """The volumes named by the command line: files, DICOM folders, folders of images, CSV/TSV lists.

    A path that does not exist is kept: it fails alone, with its reason, when its turn comes."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if format_of(path) in LIST_FORMATS:
            found.extend(_read_list(path))
        elif path.is_dir() and not looks_like_dicom_folder(path):
            inside = sorted(p for p in path.iterdir() if _is_volume(p))
            if not inside:
                raise InputError(f"{path}: no image files or DICOM series in this folder")
            found.extend(inside)
        else:
            found.append(path)
    unique = list(dict.fromkeys(p.resolve() if p.exists() else p for p in found))
    if not unique:
        raise InputError("no inputs to apply the model to")
    return unique


def _is_volume(path: Path) -> bool:
    if path.is_dir():
        return looks_like_dicom_folder(path)
    return format_of(path) in IMAGE_FORMATS and not path.name.startswith(".")


def _read_list(path: Path) -> list[Path]:
    """One path per row (first column; a header row is skipped; relative paths are relative to the list)."""
    if not path.is_file():
        raise InputError(f"{path}: no such list file")
    delimiter = "\t" if format_of(path) == ".tsv" else ","
    try:
        with path.open(newline="") as handle:
            rows = [row for row in csv.reader(handle, delimiter=delimiter) if row and row[0].strip()]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the list ({exc})") from None
    paths = [path.parent / row[0].strip() for row in rows]
    if rows and not paths[0].exists() and rows[0][0].strip().lower() in ("path", "image", "file", "input"):
        paths = paths[1:]
    if not paths:
        raise InputError(f"{path}: the list names no inputs")
    return paths


def output_paths(inputs: Sequence[Path], out_dir: Path, extension: str) -> list[Path]:
    """Each output named after its input; inputs that share a name get their parent folders' names in front."""
    if extension not in LABEL_FORMATS:
        raise InputError(f"unknown output format {extension!r}; use one of {', '.join(LABEL_FORMATS)}")
    names = [image_stem(p) for p in inputs]
    depth = 0
    while len(set(names)) < len(names) and depth < 8:
        depth += 1
        names = ["_".join([*p.parts[-1 - depth : -1], image_stem(p)]) for p in inputs]
    return [out_dir / f"{name}{extension}" for name in names]


def machine_size(cpus: int | None = None, memory_bytes: int | None = None) -> tuple[int, int]:
    """(workers, threads per worker) for a local cluster: two cores or more per worker (the encoder uses
    them), and no more workers than memory for each one's peak."""
    cpus = cpus or os.cpu_count() or 1
    if memory_bytes is None:
        try:
            memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            memory_bytes = WORKER_MEMORY_BYTES
    workers = max(1, min(cpus // 2, memory_bytes // WORKER_MEMORY_BYTES))
    return workers, max(1, cpus // workers)


def apply_one(model_bytes: bytes, image: str, output: str, device: str, threads: int, force: bool = False) -> Outcome:
    """One volume on a worker: read, apply, write atomically. Input problems (another modality than the model's,
    unless ``force``) come back as a failed Outcome.

    ``threads``: torch threads for this task (0: torch's default, all of the worker's cores)."""
    started = time.perf_counter()
    try:
        import torch

        from .engine import WARNINGS, apply_model, check_applicable, load_model, resolve_device
        from .volume_io import check_writable, read_image, write_labels

        if threads > 0:
            torch.set_num_threads(threads)
        check_writable(output)
        model = load_model(model_bytes)
        volume = read_image(image)
        check_applicable(model, volume, force, "--force")  # the cohort is run from the command line
        result = apply_model(model, volume, device=resolve_device(device), force=force)
        write_labels(result, output, model.class_names)
        warnings = tuple(result.metadata.get(WARNINGS, ()))
    except Exception as exc:
        reason = describe(exc, "the volume is too large for this worker's memory", "rerun it alone to see why")
        reason = " ".join(reason.split()).removeprefix(f"{image}: ")  # the summary names the input already
        return Outcome(image, output, FAILED, reason, time.perf_counter() - started)
    return Outcome(image, output, DONE, "", time.perf_counter() - started, warnings)


def run_cohort(
    model_path: str | os.PathLike,
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    *,
    device: str = "auto",
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    force: bool = False,
    on_outcome: Callable[[Outcome, int, int], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Apply the model to every input whose output is missing (all of them with ``overwrite``), on Dask.

    ``on_outcome(outcome, finished, total)`` is called on this thread as each volume ends. Ctrl-C cancels
    the remaining tasks and closes the cluster before the interrupt goes on. Without Dask installed the
    volumes run one after another in this process (``say`` tells the user how to get parallelism)."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        if scheduler:
            raise InputError(f"--scheduler needs Dask: {INSTALL_DASK}") from None
        Client = None  # the sequential fallback below
    model_bytes = Path(model_path).read_bytes()
    outcomes: list[Outcome] = []
    todo: list[tuple[Path, Path]] = []
    for image, output in zip(inputs, outputs, strict=True):
        if output.exists() and not overwrite:
            outcomes.append(Outcome(str(image), str(output), SKIPPED, "output exists (--overwrite redoes it)"))
        else:
            todo.append((image, output))
    total = len(inputs)
    for outcome in outcomes:
        if on_outcome is not None:
            on_outcome(outcome, len(outcomes), total)
    if not todo:
        return outcomes
    if Client is None:
        if say is not None:
            say(f"Dask is not installed: the volumes run one after another; {INSTALL_DASK} runs them in parallel")
        for image, output in todo:
            outcomes.append(apply_one(model_bytes, str(image), str(output), device, 0, force))
            if on_outcome is not None:
                on_outcome(outcomes[-1], len(outcomes), total)
        return outcomes

    cluster = None
    if scheduler:
        client = _connect(Client, scheduler)
        # a worker running several tasks at once gets one torch thread per task; one task: torch's own default
        running = max(info.get("nthreads", 1) for info in client.scheduler_info()["workers"].values())
        threads = 1 if running > 1 else 0
    else:
        count, threads = machine_size()
        if workers:
            count, threads = workers, max(1, (os.cpu_count() or 1) // workers)
        cluster = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    futures = []
    try:
        shared = client.scatter(model_bytes, broadcast=True)
        keys = {}
        for image, output in todo:
            future = client.submit(apply_one, shared, str(image), str(output), device, threads, force, pure=False)
            keys[future.key] = (image, output)
            futures.append(future)
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as exc:  # the worker itself died (memory, a crash): this input fails alone
                image, output = keys[future.key]
                outcome = Outcome(str(image), str(output), FAILED, f"its worker failed ({type(exc).__name__}: {exc})")
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome, len(outcomes), total)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return outcomes


def _connect(client_class, address: str):
    try:
        client = client_class(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    if not client.scheduler_info().get("workers"):
        client.close()
        raise InputError(f"the Dask scheduler at {address} has no workers")
    return client


def summary(outcomes: Sequence[Outcome], seconds: float) -> str:
    """The closing lines: counts, then each failure with its input and reason."""
    count = {status: sum(o.status == status for o in outcomes) for status in (DONE, SKIPPED, FAILED)}
    lines = [
        f"cohort: {count[DONE]} done, {count[SKIPPED]} skipped, {count[FAILED]} failed "
        f"(of {len(outcomes)}) in {seconds:.0f} s"
    ]
    lines += [f"failed: {o.input}: {o.reason}" for o in outcomes if o.status == FAILED]
    return "\n".join(lines)
