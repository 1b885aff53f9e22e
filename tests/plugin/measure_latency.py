"""How responsive napari stays while the plugin embeds slices in the background: the event loop's latency.

A Qt timer asks to run every 10 ms; how late each tick comes is the delay a paint stroke would see. Measured in
the same run for a few seconds with nothing running (the baseline), then while the chosen backend embeds the image
in the background (the plugin starts that as soon as an image is chosen). Needs a display (Xvfb) and the shared
data; the embedding cache starts empty (a temporary folder):

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m tests.plugin.measure_latency [--backend hybrid] [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TICK_MS = 10


def lateness(seconds: float, until=None) -> np.ndarray:
    """Milliseconds each 10 ms timer tick came late, over ``seconds`` (or until ``until()`` is true)."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    late: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append(max((now - last[0]) * 1000 - TICK_MS, 0.0))
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(TICK_MS)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and not (until and until()):
        QApplication.processEvents()
        time.sleep(0.001)
    timer.stop()
    return np.array(late)


def summary(name: str, late: np.ndarray) -> str:
    p50, p95, p99 = np.percentile(late, [50, 95, 99])
    spread = f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {late.max():.0f} ms"
    return f"{name}: {late.size} ticks, late by {spread}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="ct_abdomen", help="folder in ../shared/data (default ct_abdomen)")
    parser.add_argument("--backend", default="hybrid", help="backend whose embedding runs (default hybrid)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to measure during embedding")
    args = parser.parse_args(argv)
    os.environ.setdefault("FEWSHOT3D_CACHE_DIR", tempfile.mkdtemp(prefix="fewshot3d-latency-"))
    import napari

    folder = DATA / args.case
    if not folder.is_dir():
        sys.stderr.write(f"error: {folder} not found (the shared data folder sits beside the repository)\n")
        return 2
    viewer = napari.Viewer(show=True, title="napari-fewshot3d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-fewshot3d", "Few-shot 3D segmentation")
    widget.backend_combo.setCurrentText("interpolate")  # nothing to embed while the baseline is measured
    viewer.open(folder / "image.nii.gz", plugin="napari-fewshot3d")
    lateness(2.0)  # let the first draw settle
    idle = lateness(5.0)
    widget.backend_combo.setCurrentText(args.backend)  # starts the background embedding
    started = time.perf_counter()
    busy = lateness(args.seconds, until=lambda: not widget.jobs.job)
    took = time.perf_counter() - started
    print(summary("idle", idle))
    print(summary(f"while {args.backend} embeds ({took:.0f} s measured)", busy))
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
