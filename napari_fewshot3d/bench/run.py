"""`fewshot3d bench`: the benchmark protocol of GUIDE §5, so that every quoted number comes from one procedure.

For each case (a folder with ``image.*`` and ``reference_labels.*``), structure, k and backend: paint the
reference on the protocol's k slices, run embed → adapt → segment, then adapt → segment again with the
embedding cached (warm), and score against the reference with MONAI's Dice and HD95. The interpolate
baseline always runs in the same bench, interleaved with the other backends case by case, so gains over it are
measured under the same machine load. On each case the backends run one after another, each dropped before the
next begins: a run's peak memory is its backend's (and the libraries'), not that of the others' caches too.
Tables and plots are :mod:`.report`'s job.
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import engine
from ..backends import DEFAULT_BACKEND, Backend, backend_options, get_backend, route_options
from ..errors import InputError
from ..support import SupportSet
from ..volume import AXIS_NAMES, resample_onto_grid
from ..volume_io import read_image, write_labels
from .apply import apply_section
from .cases import Case, choose_structures, find_cases, make_support
from .metrics import machine_info, preload_metrics
from .other_scan import isotropic
from .report import write_report
from .stride import stride_record, strides
from .strokes import scribble_support
from .tables import BASELINE, PEERS
from .timed import evaluate_run

RESULTS_FORMAT_VERSION = 1


@dataclass
class BenchConfig:
    """What to benchmark; built from the command line or directly by a script or test."""

    data: Path
    cases: list[str] | None = None
    structures: list[str] | None = None
    k: list[int] = field(default_factory=lambda: [1, 3, 5])
    backends: list[str] = field(default_factory=lambda: [DEFAULT_BACKEND])
    #: Peers run beside them (interpolate always is).
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    device: str = "auto"
    axis: str = "axial"
    out: Path = Path("bench_results")
    random_seeds: list[int] = field(default_factory=list)
    multiclass: bool = False
    save_predictions: bool = False
    quiet: bool = False
    #: The apply section (bench/apply.py): models saved, loaded and applied to other scans, for saveable backends.
    apply: bool = True
    #: Also run every protocol support set as scribbles (bench/strokes.py): strokes in place of complete slices.
    scribbles: bool = False
    #: Resample every case (image and reference) to cubic voxels of this many mm before the protocol.
    spacing: float | None = None
    #: Backend options (``--weights`` ...), each given to the backends that take it.
    backend_options: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- running


# ----------------------------------------------------------------------------- the bench


def _plan(cases: Sequence[Case], chosen: dict, config: BenchConfig) -> list[tuple]:
    """(case, structures, k, seed, scribbles) in run order; each case's items are run by one backend after
    another."""
    plan = []
    for case in cases:
        groups = [chosen[case.name]] if config.multiclass else [[s] for s in chosen[case.name]]
        for structures in filter(None, groups):
            for k in config.k:
                for seed in [None, *config.random_seeds]:
                    plan.append((case, structures, k, seed, False))
                if config.scribbles:
                    plan.append((case, structures, k, None, True))
    return plan


def _by_case(plan: list[tuple]) -> list[list[tuple]]:
    """The plan's items case by case (each case's items in plan order)."""
    cases: dict[str, list[tuple]] = {}
    for item in plan:
        cases.setdefault(item[0].name, []).append(item)
    return list(cases.values())


def bench_backends(peers: Sequence[str], backends: Sequence[str]) -> list[str]:
    """Every backend a bench runs, peers first (interpolate, the baseline, always)."""
    return list(dict.fromkeys([BASELINE, *peers, *backends]))


def _validate(config: BenchConfig) -> tuple[list[str], str]:
    """Everything that can be checked before the first run, so that bad input writes nothing."""
    backends = bench_backends(config.peers, config.backends)
    for name, options in route_options(backends, config.backend_options).items():
        get_backend(name, **options)
    device = engine.resolve_device(config.device)
    if config.axis not in AXIS_NAMES:
        raise InputError(f"unknown axis {config.axis!r}: choose axial, coronal or sagittal")
    if not config.k or min(config.k) < 1:
        raise InputError("--k needs painted-slice counts of at least 1")
    if config.spacing is not None and not 0.2 <= config.spacing <= 10:
        raise InputError(f"--spacing {config.spacing:g}: give a voxel size in mm between 0.2 and 10")
    if config.out.exists() and not config.out.is_dir():
        raise InputError(f"{config.out}: exists and is not a folder")
    return backends, device


def run_bench(config: BenchConfig, command_line: str | None = None) -> dict[str, Any]:
    """Run the whole bench and write results.json, results.md and the plots into ``config.out``."""
    from tqdm import tqdm

    backend_names, device = _validate(config)
    notes: list[str] = []
    cases = find_cases(config.data, config.cases, notes)
    plan = _plan(cases, choose_structures(cases, config.structures, notes), config)
    machine, created = machine_info(device, command_line), not config.out.exists()
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{config.out}: results folder cannot be created ({exc.strerror or exc})") from None
    if config.spacing is not None:
        notes.append(
            f"every case was resampled to {config.spacing:g} mm isotropic voxels before the protocol (image linear, "
            "reference nearest neighbour): a finer grid made from the same scan, not a scan acquired at it"
        )
    for note in notes:
        tqdm.write(f"note: {note}", file=sys.stderr)
    started = time.perf_counter()
    preload_metrics()  # before the first run, so that every run's RSS starts from the same libraries
    interval = 0.1 if sys.stderr.isatty() else 20.0  # a log file gets a line every 20 s, not every update
    bar = tqdm(
        total=len(plan) * len(backend_names), file=sys.stderr, unit="run", disable=config.quiet, mininterval=interval
    )
    # A private, empty embedding cache: the user's disk cache must not make cold runs look warm.
    cache_dir = tempfile.TemporaryDirectory(prefix="fewshot3d-bench-cache-")
    runner = _Runner(config, backend_names, device, bar, Path(cache_dir.name))
    try:
        for items in _by_case(plan):
            for name in backend_names:
                for item in items:
                    runner.run(*item, name=name)
                runner.release(name)
        runner.finish()
        encoder = runner.encoder_check(cases[0], choose_structures(cases, config.structures, [])[cases[0].name])
        apply_rows = (
            runner.apply_section(cases, choose_structures(cases, config.structures, [])) if config.apply else []
        )
    except BaseException:  # interrupted: leave nothing half-written behind
        shutil.rmtree(runner.partial, ignore_errors=True)
        if created and not any(config.out.iterdir()):
            config.out.rmdir()
        raise
    finally:
        bar.close()
        cache_dir.cleanup()
    config_record = {key: str(v) if isinstance(v, Path) else v for key, v in asdict(config).items()}
    results = {
        "format": "fewshot3d-bench",
        "version": RESULTS_FORMAT_VERSION,
        "machine": machine,
        "config": config_record | {"backends": backend_names, "cases": [c.name for c in cases]},
        "notes": notes,
        "elapsed_s": time.perf_counter() - started,
        "rows": runner.rows,
        "apply_rows": apply_rows,
        "encoder": encoder,
        "stride": runner.stride or None,
    }
    write_report(results, config.out)
    return results


class _Runner:
    """Runs plan items in order, keeping one loaded case and one backend instance per backend at a time,
    so that a backend's embedding cache serves every structure and k of a case."""

    def __init__(self, config: BenchConfig, backend_names: list[str], device: str, bar: Any, cache_dir: Path) -> None:
        self.config, self.backend_names, self.device, self.bar = config, backend_names, device, bar
        self.cache_dir = cache_dir
        self.rows: list[dict] = []
        self.stride: dict | None = None
        self.runs = 0
        self.case_name: str | None = None
        self.partial = config.out / ".predictions.partial"
        shutil.rmtree(self.partial, ignore_errors=True)
        if config.save_predictions:
            self.partial.mkdir()

    def _load(self, case: Case) -> None:
        self.case_name = case.name
        self.image = read_image(case.image_path)
        self.reference = resample_onto_grid(case.reference, self.image, what=f"{case.name} reference labels")
        self.axis = self.image.slicing_axis(self.config.axis)
        if self.config.spacing is not None:
            self.image, self.reference = isotropic(self.image, self.reference, self.config.spacing, self.axis)
        self.backends: dict[str, Backend] = {}
        self.embedded: set[str] = set()

    def backend(self, name: str) -> Backend:
        """This case's instance of backend ``name``: a new one per case, its cache in the bench's own folder, so
        that each case's first run is cold."""
        if name not in self.backends:
            options = route_options([name], self.config.backend_options)[name]
            self.backends[name] = get_backend(name, **options | self._cache_option(name))
        return self.backends[name]

    def release(self, name: str) -> None:
        """Drop this case's instance of ``name`` (and what it keeps in memory) before the next backend runs."""
        self.backends.pop(name, None)
        gc.collect()

    def _cache_option(self, name: str) -> dict[str, Path]:
        """For a backend that caches embeddings on disk: a folder of this bench's own, per case."""
        if "cache_dir" not in backend_options(name):
            return {}
        return {"cache_dir": self.cache_dir / f"{self.case_name}-{name}"}

    def _save(self, stem: str, array: np.ndarray | None, names: dict[int, str]) -> str | None:
        if not self.config.save_predictions or array is None:
            return None
        write_labels(self.image.with_array(array), self.partial / f"{stem}.nii.gz", names)
        return f"predictions/{stem}.nii.gz"

    def run(self, case: Case, structures: list, k: int, seed: int | None, scribbles: bool, name: str) -> None:
        """Backend ``name`` on the support set of one (case, structures, k, seed), painted as strokes with
        ``scribbles``."""
        if case.name != self.case_name:
            self._load(case)
        support = make_support(self.reference, structures, self.axis, k, seed)
        if scribbles:
            support = scribble_support(support)
        what = "multiclass" if self.config.multiclass else structures[0][0]
        stem = f"{case.name}_{what}_k{k}" + ("" if seed is None else f"_seed{seed}") + ("_scribbles" * scribbles)
        support_file = f"predictions/{stem}_support.nii.gz" if self.config.save_predictions else None
        if name == self.backend_names[0]:  # the same support for every backend: written once
            self._save(f"{stem}_support", support.labels.array, support.class_names)
        self.bar.set_postfix_str(f"{case.name} {what} k={k} {name}", refresh=False)
        run_rows, prediction = evaluate_run(self.image, self.reference, support, self.backend(name), self.device)
        common = {
            "run_id": self.runs,
            "case": case.name,
            "k": k,
            "backend": name,
            "slices": "scribbles" if scribbles else "protocol" if seed is None else "random",
            "seed": seed,
            "multiclass": self.config.multiclass,
            "device": self.device,
            "embed_first_for_volume": name not in self.embedded,
            "prediction_file": self._save(f"{stem}_{name}", prediction, support.class_names),
            "support_file": support_file,
        }
        self.embedded.add(name)
        if self.stride is None and seed is None and not scribbles and strides(name):
            self._stride_check(run_rows[0], support, name)
        self.runs += 1
        self.rows.extend(common | row for row in run_rows)
        if prediction is None:  # one note per failed run, however many structures it scored
            where = " (scribbles)" if scribbles else "" if seed is None else f" (random slices, seed {seed})"
            self.bar.write(
                f"note: {case.name} {what} k={k}{where} {name} failed: {run_rows[0]['error']}", file=sys.stderr
            )
        self.bar.update()

    def _stride_check(self, row: dict, support: SupportSet, name: str) -> None:
        """The first run that stepped over thin slices, again on every slice (bench/stride.py)."""
        stride = self.backend(name).slice_stride(self.image, self.axis)
        if stride > 1:
            options = route_options([name], self.config.backend_options)[name]
            every = self.cache_dir / f"{self.case_name}-{name}-every-slice"
            args = (self.image, self.reference, support, name, options, self.device, every, evaluate_run)
            record = stride_record(row, stride, *args)
            self.stride = {"case": self.case_name} | record if record else {}  # {}: failed, not tried again

    def encoder_check(self, case: Case, structures: list) -> dict | None:
        """The first benchmarked backend with an image encoder: its runtime against plain fp32 on slices of the
        case's structures (None when no backend has an encoder)."""
        self._load(case)
        labels = np.isin(self.reference.array, [value for _, value in structures])
        for name in self.backend_names:
            self.bar.set_postfix_str(f"encoder: {name} against fp32", refresh=False)
            record = self.backend(name).encoder_check(self.image, labels, self.axis, self.device)
            if record is not None:
                return {"backend": name, "case": case.name} | record
        return None

    def apply_section(self, cases: Sequence[Case], chosen: dict) -> list[dict]:
        """Every saveable backend's model of each case (all its structures at once) applied to the other scans."""
        saveable = [n for n in self.backend_names if get_backend(n).can_save]
        if not saveable:
            return []
        scans = {}
        for case in cases:
            self._load(case)
            scans[case.name] = (self.image, self.reference, {n: v for v, n in case.class_names.items()})
        options = route_options(self.backend_names, self.config.backend_options)
        rows: list[dict] = []
        for case in cases:
            self.case_name = case.name
            for name in saveable:
                self.bar.set_postfix_str(f"apply: {case.name} {name}", refresh=False)
                rows += apply_section(
                    case.name,
                    chosen[case.name],
                    self.config.k,
                    lambda name=name: get_backend(name, **options[name] | self._cache_option(name)),
                    self.device,
                    scans,
                    scans[case.name][0].slicing_axis(self.config.axis),
                )
        return rows

    def finish(self) -> None:
        if self.config.save_predictions:
            shutil.rmtree(self.config.out / "predictions", ignore_errors=True)
            self.partial.rename(self.config.out / "predictions")
