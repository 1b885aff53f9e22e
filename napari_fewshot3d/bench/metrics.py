"""The bench's measuring instruments: Dice and HD95 through MONAI, peak memory, and the machine they ran on.

Kept apart from the protocol so that each can be tested on synthetic masks with known answers, and so
that nobody hand-writes a metric: MONAI's implementations are the ones the field reports.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from .. import __version__


def preload_metrics() -> None:
    """Import torch and MONAI's metrics now (seconds), not inside the first scored run."""
    import monai.metrics  # noqa: F401


def dice_score(prediction: np.ndarray, reference: np.ndarray) -> float | None:
    """MONAI Dice of two binary masks; None when the reference is empty (nothing to score against)."""
    import torch
    from monai.metrics import compute_dice

    if reference.size == 0 or not reference.any():
        return None
    as_tensor = [torch.from_numpy(np.ascontiguousarray(m, dtype=bool))[None, None] for m in (prediction, reference)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(compute_dice(*as_tensor, include_background=True, ignore_empty=True)[0, 0])
    return value if np.isfinite(value) else None


def hd95_mm(prediction: np.ndarray, reference: np.ndarray, spacing: Sequence[float]) -> float | None:
    """MONAI's 95th-percentile Hausdorff distance in mm; None when either mask is empty (undefined there)."""
    from monai.metrics import compute_hausdorff_distance

    if not prediction.any() or not reference.any():
        return None
    with warnings.catch_warnings():  # MONAI warns about its own deprecated arguments on every call
        warnings.simplefilter("ignore")
        value = float(
            compute_hausdorff_distance(
                prediction.astype(bool)[None, None],
                reference.astype(bool)[None, None],
                include_background=True,
                percentile=95,
                spacing=[float(s) for s in spacing],
            )[0, 0]
        )
    return value if np.isfinite(value) else None


def score(prediction: np.ndarray, reference: np.ndarray, painted: Sequence[int], axis: int, spacing) -> dict:
    """Dice over the volume and over the slices nobody painted, and HD95; each None where undefined."""
    unpainted = [np.delete(m, list(painted), axis=axis) for m in (prediction, reference)]
    hd95 = hd95_mm(prediction, reference, spacing)
    return {
        "dice": dice_score(prediction, reference),
        "dice_unpainted": dice_score(*unpainted),
        "hd95_mm": hd95,
        "hd95_note": None if hd95 is not None else "empty prediction: HD95 undefined, recorded as null",
        "reference_voxels": int(reference.sum()),
        "predicted_voxels": int(prediction.sum()),
    }


def _proc_status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            return next(float(line.split()[1]) / 1024 for line in status if line.startswith(field + ":"))
    except (OSError, StopIteration, ValueError):
        return None


def _current_rss_mib() -> float | None:
    rss = _proc_status_mib("VmRSS")
    if rss is None:
        try:
            import psutil

            rss = psutil.Process().memory_info().rss / 2**20
        except ImportError:
            pass
    return rss


class PeakMemory:
    """Peak resident memory of this process during a block, and CUDA's peak on cuda.

    On Linux the kernel's high-water mark is reset before the block (/proc/self/clear_refs) and read after
    it (VmHWM): exact, and not inflated by earlier runs. Elsewhere psutil samples RSS every 10 ms, which can
    miss short spikes; ``method`` says which one was used.
    """

    def __init__(self, device: str) -> None:
        self.device, self.method = device, "linux-vmhwm-reset"
        self.start_rss_mib: float | None = None
        self.peak_rss_mib: float | None = None
        self.peak_cuda_mib: float | None = None
        self._sampler: tuple | None = None

    def __enter__(self) -> PeakMemory:
        self.start_rss_mib = _current_rss_mib()
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            self.method = "psutil-sampled-10ms"
            self._start_sampler()
        if self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
        return self

    def _start_sampler(self) -> None:
        import threading

        import psutil

        process, stop, peak = psutil.Process(), threading.Event(), [0]

        def sample() -> None:
            while not stop.wait(0.01):
                peak[0] = max(peak[0], process.memory_info().rss)

        peak[0] = process.memory_info().rss
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        self._sampler = (thread, stop, peak)

    def __exit__(self, *exc: object) -> None:
        if self._sampler is None:
            self.peak_rss_mib = _proc_status_mib("VmHWM")
        else:
            thread, stop, peak = self._sampler
            stop.set()
            thread.join()
            self.peak_rss_mib = peak[0] / 2**20
        if self.device == "cuda":
            import torch

            self.peak_cuda_mib = torch.cuda.max_memory_allocated() / 2**20


def machine_info(device: str, command_line: str | None) -> dict[str, Any]:
    """What a reader needs to judge the timings: machine, versions, the exact command, the date."""
    info: dict[str, Any] = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command_line": command_line if command_line is not None else shlex.join(sys.argv),
        "cwd": os.getcwd(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "fewshot3d": __version__,
        "numpy": np.__version__,
        "device": device,
    }
    for module in ("torch", "monai", "itk", "psutil"):
        try:
            info[module] = __import__(module).__version__
        except Exception:
            info[module] = None
    if info["psutil"]:
        import psutil

        info["memory_total_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    if info["torch"]:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda_device"] = torch.cuda.get_device_name() if device == "cuda" else None
    return info
