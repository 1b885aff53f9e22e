"""`fewshot3d bench --spacing`: each case resampled to cubic voxels before the protocol, and said so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_fewshot3d.bench.other_scan import isotropic
from napari_fewshot3d.bench.run import BenchConfig, run_bench
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import read_labels, write_image, write_labels


def ball_case(shape=(30, 28, 20), spacing=(2.0, 2.0, 3.0)) -> tuple[Volume, Volume]:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-40.0, 12.0, 7.5)
    index = np.indices(shape).astype(float)
    centre_mm = np.array([30.0, 26.0, 30.0])
    distance = np.sqrt(sum(((index[a] * spacing[a]) - centre_mm[a]) ** 2 for a in range(3)))
    labels = (distance <= 15.0).astype(np.uint8)
    image = np.where(labels > 0, 60, -100).astype(np.int16)
    return Volume(image, affine, "ball"), Volume(labels, affine, "ball_labels")


def ball_case_folder(tmp_path: Path) -> tuple[Volume, Volume]:
    """``tmp_path/data/ball``: the ball case as a bench case folder (image, reference labels, names)."""
    image, labels = ball_case()
    case = tmp_path / "data" / "ball"
    case.mkdir(parents=True)
    write_image(image, case / "image.nii.gz")
    write_labels(labels, case / "reference_labels.nii.gz")
    (case / "labels.json").write_text(json.dumps({"labels": {"1": "liver"}}))
    return image, labels


def test_isotropic_keeps_the_field_of_view_the_structure_and_its_place():
    image, labels = ball_case()
    fine_image, fine_labels = isotropic(image, labels, 1.0)
    assert np.allclose(fine_image.spacing, 1.0) and fine_image.same_grid(fine_labels)
    np.testing.assert_allclose(fine_image.affine[:3, 3], image.affine[:3, 3])  # voxel 0 stays where it was
    np.testing.assert_allclose(fine_image.affine[:3, :3] / 1.0, np.eye(3))  # same orientation
    extent = (np.array(fine_image.shape) - 1) * 1.0
    assert np.all(extent <= (np.array(image.shape) - 1) * image.spacing) and np.all(
        extent > (np.array(image.shape) - 2) * image.spacing
    )
    volume_mm3 = labels.array.sum() * np.prod(labels.spacing)
    assert fine_labels.array.sum() * 1.0 == pytest.approx(volume_mm3, rel=0.05)

    def centroid(v: Volume) -> np.ndarray:
        ijk = np.argwhere(v.array > 0).mean(axis=0)
        return (v.affine @ np.append(ijk, 1.0))[:3]

    np.testing.assert_allclose(centroid(fine_labels), centroid(labels), atol=1.0)
    assert set(np.unique(fine_labels.array)) == {0, 1} and fine_image.array.dtype == np.int16


def test_the_bench_runs_on_the_resampled_grid_and_says_so(tmp_path: Path):
    image, labels = ball_case_folder(tmp_path)
    out = tmp_path / "out"
    config = BenchConfig(
        data=tmp_path / "data",
        k=[3],
        backends=["interpolate"],
        peers=[],
        out=out,
        quiet=True,
        apply=False,
        save_predictions=True,
        spacing=1.5,
    )
    results = run_bench(config)
    assert any("resampled to 1.5 mm isotropic" in note for note in results["notes"])
    assert results["encoder"] is None  # Fill between slices has no image encoder to time
    assert "resampled to 1.5 mm isotropic" in (out / "results.md").read_text()
    (row,) = results["rows"]
    assert row["status"] == "ok" and row["dice"] > 0.8, row
    prediction = read_labels(out / row["prediction_file"])
    assert np.allclose(prediction.spacing, 1.5) and prediction.shape == isotropic(image, labels, 1.5)[0].shape
    with pytest.raises(InputError, match="between 0.2 and 10"):
        run_bench(BenchConfig(data=tmp_path / "data", backends=["interpolate"], peers=[], out=out, spacing=0.0))


def test_each_backend_runs_a_case_alone_its_instance_reused_then_dropped(tmp_path: Path, monkeypatch):
    """A run's peak memory is its own backend's: on a case the backends run one after another, each keeping its
    instance (and caches) over the case's runs, and dropped before the next backend begins."""
    import weakref

    from napari_fewshot3d.bench import run as bench_run

    ball_case_folder(tmp_path)
    seen: list[tuple[str, weakref.ref]] = []
    evaluate = bench_run.evaluate_run

    def watched(image, reference, support, backend, device):
        alive = {name for name, ref, _ in seen if ref() is not None and ref() is not backend}
        assert alive == set(), f"{backend.name} runs while {alive} still holds its caches"
        again = any(ref() is backend for _, ref, _ in seen)
        seen.append((backend.name, weakref.ref(backend), again))
        return evaluate(image, reference, support, backend, device)

    monkeypatch.setattr(bench_run, "evaluate_run", watched)
    config = BenchConfig(
        data=tmp_path / "data", k=[2, 3], backends=["pixel-classifier"], peers=[], out=tmp_path / "out", quiet=True
    )
    results = run_bench(config)
    assert [(name, again) for name, _, again in seen] == [
        ("interpolate", False),
        ("interpolate", True),  # the case's instance serves its every run
        ("pixel-classifier", False),
        ("pixel-classifier", True),
    ]
    assert all(row["status"] == "ok" for row in results["rows"])
    assert [r["embed_first_for_volume"] for r in results["rows"]] == [True, False, True, False]
