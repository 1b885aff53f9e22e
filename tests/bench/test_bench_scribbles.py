"""`fewshot3d bench --scribbles`: the protocol slices painted as strokes, run and reported beside whole slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_fewshot3d.bench.cases import make_support
from napari_fewshot3d.bench.run import BenchConfig, run_bench
from napari_fewshot3d.bench.strokes import scribble_support
from napari_fewshot3d.volume_io import read_labels

from .test_bench_spacing import ball_case, ball_case_folder


def test_bench_strokes_are_thin_inside_and_arcs_outside_on_the_protocol_slices():
    image, labels = ball_case()
    full = make_support(labels, [("ball", 1)], 2, 3, None)
    strokes = scribble_support(full)
    assert strokes.background == 2 and strokes.partial_slices == full.get(1).slices
    painted = strokes.labels.array
    inside, outside = painted == 1, painted == 2
    assert inside.sum() < 0.2 * (full.labels.array == 1).sum() and np.all(labels.array[inside] == 1)
    assert outside.any() and not np.any(labels.array[outside] == 1)  # arcs lie outside the structure
    for index in strokes.partial_slices:  # half a ring on each slice, never all of it
        ring = outside[:, :, index]
        assert 0 < ring.sum() and ring[:, : ring.shape[1] // 2].any() and ring[:, ring.shape[1] // 2 :].any()


def test_the_bench_runs_scribbles_beside_whole_slices_and_reports_the_difference(tmp_path: Path):
    _, labels = ball_case_folder(tmp_path)
    out = tmp_path / "out"
    config = BenchConfig(
        data=tmp_path / "data",
        k=[3],
        backends=["interpolate"],
        peers=[],
        out=out,
        quiet=True,
        apply=False,
        scribbles=True,
        save_predictions=True,
    )
    results = run_bench(config)
    whole, scribbles = (next(r for r in results["rows"] if r["slices"] == kind) for kind in ("protocol", "scribbles"))
    assert whole["status"] == scribbles["status"] == "ok"
    assert scribbles["painted_slices"] == whole["painted_slices"]
    assert scribbles["dice"] > 0.8 and abs(scribbles["dice"] - whole["dice"]) < 0.1, (scribbles, whole)
    support = read_labels(out / scribbles["support_file"]).array
    assert set(np.unique(support)) == {0, 1, 2} and (support == 1).sum() < (labels.array == 1).sum() / 10
    report = (out / "results.md").read_text()
    assert "## Scribbles" in report and "Scribbles − complete slices" in report
    assert f"{scribbles['dice'] - whole['dice']:+.3f}" in report
