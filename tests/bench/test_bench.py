"""`fewshot3d bench`: the protocol's slice choice, the metrics on known answers, the report, a short real bench,
and the CLI contract for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_fewshot3d.backends.base import AdaptedModel, Backend
from napari_fewshot3d.bench.cases import (
    DEFAULT_STRUCTURES,
    FALLBACK_STRUCTURES,
    choose_structures,
    default_structures,
    find_cases,
    make_support,
)
from napari_fewshot3d.bench.metrics import dice_score, hd95_mm, score
from napari_fewshot3d.bench.protocol import one_correction, protocol_slices
from napari_fewshot3d.bench.report import write_report
from napari_fewshot3d.bench.timed import evaluate_run
from napari_fewshot3d.cli.main import main as fewshot3d_main
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import write_image, write_labels

from ..conftest import DATA, data_path

AXIAL = 2


def slab(lo: int, hi: int, n: int = 30, value: int = 1) -> np.ndarray:
    """A 6x6xn labels array whose structure spans axial slices lo..hi."""
    mask = np.zeros((6, 6, n), np.uint8)
    mask[1:5, 1:5, lo : hi + 1] = value
    return mask


# ----------------------------------------------------------------------------- protocol (GUIDE §5)


# Hand-computed from round(lo + (i + 0.5) * (hi - lo + 1) / k - 0.5); Python's round sends .5 to the even
# neighbour (extent 10..19, k=1: 14.5 -> 14).
@pytest.mark.parametrize(
    "lo, hi, k, expected",
    [
        (10, 19, 1, [14]),
        (10, 19, 2, [12, 17]),
        (10, 19, 3, [11, 14, 18]),  # 11.17, 14.5, 17.83
        (10, 19, 5, [10, 12, 14, 16, 18]),  # 10.5, 12.5, 14.5, 16.5, 18.5
        (5, 40, 3, [10, 22, 34]),  # 10.5, 22.5, 34.5
        (5, 40, 5, [8, 15, 22, 30, 37]),  # 8.1, 15.3, 22.5, 29.7, 36.9
    ],
)
def test_protocol_slices_match_hand_computed_values(lo: int, hi: int, k: int, expected: list[int]) -> None:
    assert protocol_slices(slab(lo, hi, n=50) > 0, AXIAL, k) == expected


def test_bench_support_paints_exactly_the_protocol_slices() -> None:
    reference = Volume(slab(10, 19) + slab(3, 8, value=2), np.diag([1.0, 1.0, 3.0, 1.0]))
    support = make_support(reference, [("organ", 1)], AXIAL, 2, seed=None)
    assert support.get(1).slices == (12, 17)
    assert support.values == [1]  # one structure per run: the other class is not painted
    expected = np.zeros_like(reference.array)
    expected[..., [12, 17]] = (reference.array[..., [12, 17]] == 1).astype(np.uint8)
    np.testing.assert_array_equal(support.labels.array, expected)
    assert support.class_names == {1: "organ"}


def test_multiclass_support_paints_the_union_of_both_structures_slices() -> None:
    reference = Volume(slab(10, 19) + slab(3, 8, value=2), np.eye(4))
    support = make_support(reference, [("a", 1), ("b", 2)], AXIAL, 2, seed=None)
    assert support.get(1).slices == (12, 17)
    assert support.get(2).slices == (4, 7)  # extent 3..8, k=2: 4.0 and 7.0
    assert support.painted_slices() == (4, 7, 12, 17)


def test_random_slices_are_reproducible_and_inside_the_structure() -> None:
    reference = Volume(slab(10, 19), np.eye(4))
    first = make_support(reference, [("organ", 1)], AXIAL, 3, seed=7).get(1).slices
    assert first == make_support(reference, [("organ", 1)], AXIAL, 3, seed=7).get(1).slices
    assert len(first) == 3 and all(10 <= s <= 19 for s in first)


# ----------------------------------------------------------------------------- metrics (MONAI) on known answers


def test_dice_of_two_half_overlapping_cubes_is_one_half() -> None:
    a = np.zeros((20, 12, 12), bool)
    b = np.zeros_like(a)
    a[0:10, 1:11, 1:11] = True
    b[5:15, 1:11, 1:11] = True  # overlap 5 x 10 x 10 of 1000 + 1000
    assert dice_score(b, a) == pytest.approx(0.5, abs=1e-6)
    assert dice_score(a, a) == pytest.approx(1.0)
    assert dice_score(np.zeros_like(a), a) == 0.0
    assert dice_score(a, np.zeros_like(a)) is None  # nothing to score against


@pytest.mark.parametrize("axis, spacing, expected", [(2, (1.0, 1.0, 3.0), 3.0), (0, (0.5, 1.0, 3.0), 0.5)])
def test_hd95_of_a_one_voxel_shift_is_the_voxel_size_along_that_axis(axis, spacing, expected) -> None:
    reference = np.zeros((16, 16, 16), bool)
    reference[4:12, 4:12, 4:12] = True
    assert hd95_mm(np.roll(reference, 1, axis=axis), reference, spacing) == pytest.approx(expected)
    assert hd95_mm(reference, reference, spacing) == pytest.approx(0.0)


def test_an_empty_prediction_scores_dice_zero_and_hd95_null_with_a_note() -> None:
    reference = np.zeros((8, 8, 8), bool)
    reference[2:6, 2:6, 2:6] = True
    result = score(np.zeros_like(reference), reference, [3], AXIAL, (1.0, 1.0, 1.0))
    assert result["dice"] == 0.0 and result["dice_unpainted"] == 0.0
    assert result["hd95_mm"] is None and "empty prediction" in result["hd95_note"]


def test_dice_on_unpainted_slices_leaves_the_painted_ones_out() -> None:
    reference = slab(10, 19) > 0
    prediction = np.zeros_like(reference)
    prediction[..., [12, 17]] = reference[..., [12, 17]]  # right only where it was painted
    result = score(prediction, reference, [12, 17], AXIAL, (1.0, 1.0, 1.0))
    assert result["dice"] == pytest.approx(2 * 2 / (2 + 10), abs=1e-6)
    assert result["dice_unpainted"] == 0.0


# ----------------------------------------------------------------------------- runs with stand-in backends (no ITK)


class PaintedOnlyBackend(Backend):
    """Predicts nothing beyond the painted slices (the engine keeps those): a known, cheap answer."""

    name = "test-painted-only"

    def adapt(self, volume, support, device, task) -> AdaptedModel:
        return _Nothing()


class _Nothing(AdaptedModel):
    backend_name = PaintedOnlyBackend.name
    class_names: dict[int, str] = {}

    def segment(self, volume, device, task) -> np.ndarray:
        return np.zeros(volume.shape, np.uint8)


class BrokenBackend(Backend):
    name = "test-broken"

    def adapt(self, volume, support, device, task) -> AdaptedModel:
        raise RuntimeError("head exploded")


def test_a_run_is_timed_and_scored_per_structure() -> None:
    reference = Volume(slab(10, 19), np.diag([1.0, 1.0, 3.0, 1.0]))
    image = reference.with_array(reference.array.astype(np.int16) * 100)
    support = make_support(reference, [("organ", 1)], AXIAL, 2, seed=None)
    rows, prediction = evaluate_run(image, reference, support, PaintedOnlyBackend(), "cpu")
    (row,) = rows
    assert row["status"] == "ok" and row["painted_slices"] == [12, 17]
    assert row["dice"] == pytest.approx(2 * 2 / 12, abs=1e-6) and row["dice_unpainted"] == 0.0
    assert row["hd95_mm"] is not None and row["warm_matches_cold"] is True
    for key in ("embed_s", "adapt_s", "segment_s", "adapt_warm_s", "segment_warm_s", "readapt_s", "peak_rss_mib"):
        assert row[key] is not None and row[key] >= 0, key
    assert set(np.unique(prediction)) == {0, 1}
    # One corrected slice (the first of the wrong, unpainted ones) is kept as painted: 2 + 1 of 10 slices right.
    assert row["corrected_slices"] == [10] and row["dice_corrected"] == pytest.approx(2 * 3 / 13, abs=1e-6)


def test_one_correction_paints_the_worst_slice_and_declares_a_leak_slice_empty() -> None:
    reference = Volume(slab(10, 19), np.eye(4))
    support = make_support(reference, [("organ", 1)], AXIAL, 2, seed=None)
    prediction = support.labels.array.copy()
    prediction[:, :, 12:18] = reference.array[:, :, 12:18]
    prediction[:, :, 25] = 1  # a leak: 36 wrong voxels, more than any missed slice (16)
    corrected = one_correction(support, prediction, reference)
    assert corrected.empty_slices == (25,) and corrected.negative_slices(1) == (12, 17, 25)
    prediction[:, :, 25] = 0
    corrected = one_correction(support, prediction, reference)
    assert corrected.get(1).slices == (10, 12, 17)
    assert np.array_equal(corrected.labels.array[:, :, 10], reference.array[:, :, 10])
    assert not support.labels.array[:, :, 10].any()  # the original support is untouched
    assert one_correction(support, reference.array, reference) is None


def test_a_failed_run_is_a_row_with_its_error() -> None:
    reference = Volume(slab(10, 19), np.eye(4))
    support = make_support(reference, [("organ", 1)], AXIAL, 2, seed=None)
    rows, prediction = evaluate_run(reference, reference, support, BrokenBackend(), "cpu")
    assert prediction is None
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "RuntimeError: head exploded"
    assert rows[0]["embed_s"] is not None  # what was measured before the failure is kept


# ----------------------------------------------------------------------------- cases and structures


def write_case(folder: Path, labels: np.ndarray, names: dict[int, str] | None) -> Path:
    folder.mkdir(parents=True)
    volume = Volume(labels, np.diag([2.0, 2.0, 3.0, 1.0]))
    write_image(volume.with_array(labels.astype(np.int16) * 100), folder / "image.nii.gz")
    write_labels(volume, folder / "reference_labels.nii.gz")
    if names is not None:
        (folder / "labels.json").write_text(json.dumps({"labels": {str(k): v for k, v in names.items()}}))
    return folder


def test_structures_missing_from_one_case_are_noted_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    write_case(tmp_path / "a", slab(10, 19) + slab(3, 8, value=2), {1: "liver", 2: "spleen", 3: "stomach"})
    write_case(tmp_path / "b", slab(5, 9), {1: "liver"})
    (tmp_path / "dicom_only").mkdir()
    notes: list[str] = []
    cases = find_cases(tmp_path, None, notes)
    assert [c.name for c in cases] == ["a", "b"] and any("dicom_only" in n for n in notes)
    chosen = choose_structures(cases, ["liver", "spleen"], notes)
    assert chosen == {"a": [("liver", 1), ("spleen", 2)], "b": [("liver", 1)]}
    assert any("b: no spleen" in n for n in notes)
    with pytest.raises(InputError, match="stomach"):  # named in labels.json, absent from every reference
        choose_structures(cases, ["stomach"], notes)
    assert default_structures(cases[0]) == ["liver", "spleen"]  # FALLBACK_STRUCTURES present in the case
    assert set(DEFAULT_STRUCTURES["ct_abdomen"]) > set(FALLBACK_STRUCTURES)


# ----------------------------------------------------------------------------- the report


def fake_results() -> dict:
    def row(backend, k, structure, dice, status="ok"):
        ok = status == "ok"
        return {
            "run_id": hash((backend, k, structure)),
            "case": "c",
            "structure": structure,
            "k": k,
            "backend": backend,
            "slices": "protocol",
            "seed": None,
            "status": status,
            "error": None if ok else "needs 2 slices",
            "dice": dice,
            "dice_unpainted": dice,
            "hd95_mm": 4.0 if ok else None,
            "embed_first_for_volume": k == 1 and structure == "liver",
            "embed_s": 0.5,
            "adapt_s": 1.0 if ok else None,
            "segment_s": 2.0 if ok else None,
            "adapt_warm_s": 0.5 if ok else None,
            "segment_warm_s": 1.0 if ok else None,
            "peak_rss_mib": 100.0 if ok else None,
            "rss_start_mib": 80.0,
            "rss_method": "test",
        }

    rows = [row("interpolate", 1, s, None, "failed") for s in ("liver", "spleen")]
    rows += [row("interpolate", 3, "liver", 0.6), row("interpolate", 3, "spleen", 0.8)]
    rows += [row("other", 1, "liver", 0.7), row("other", 1, "spleen", 0.9)]
    rows += [row("other", 3, "liver", 0.9), row("other", 3, "spleen", 0.9)]
    rows += [row("pixel-classifier", 1, "liver", 0.6), row("pixel-classifier", 1, "spleen", 0.95)]
    rows += [row("pixel-classifier", 3, "liver", 0.85), row("pixel-classifier", 3, "spleen", 0.95)]
    machine = {"command_line": "fewshot3d bench", "date": "today", "platform": "test", "usable_cpus": 2}
    machine |= {"cpu_count": 2, "python": "3", "torch": None, "device": "cpu"}
    config = {"backends": ["interpolate", "pixel-classifier", "other"], "cases": ["c"], "multiclass": False}
    config["axis"] = "axial"
    return {"machine": machine, "config": config | {"random_seeds": []}, "notes": [], "elapsed_s": 60.0, "rows": rows}


def test_report_tables_plots_and_json(tmp_path: Path) -> None:
    results = fake_results()
    results["rows"][2]["dice_unpainted"] = float("nan")
    paths = write_report(results, tmp_path)
    markdown = (tmp_path / "results.md").read_text()
    # gains over each peer: interpolate (failed k=1 is not available) and the pixel classifier
    header = "| backend | k=1 | k=3 | gain vs interpolate k=1 | gain vs interpolate k=3 | gain vs pixel-classifier k=1"
    assert header in markdown
    assert "| interpolate | — | 0.700 | baseline | baseline | — | -0.200 |" in markdown
    assert "| pixel-classifier | 0.775 | 0.900 | — | +0.200 | peer | peer |" in markdown
    assert "| other | 0.800 | 0.900 | — | +0.200 | +0.025 | +0.000 |" in markdown  # no gain without a baseline at k=1
    # per structure, the best backend at each k and its margin over the runner-up
    assert "| c | liver | **best of** | other 0.700 (+0.100) | other 0.900 (+0.050) |" in markdown
    best = "pixel-classifier 0.950 (+0.050)"
    assert f"| c | spleen | **best of** | {best} | {best} |" in markdown
    assert "at k=1 it fails" in markdown
    assert json.loads((tmp_path / "results.json").read_text())["rows"][2]["dice_unpainted"] is None  # no NaN
    for png in paths[2:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


# ----------------------------------------------------------------------------- a short bench on real data


#: The pixel classifier (seeded: deterministic) on this CT, a few hundredths under the measured Dice
#: (spleen 0.840 / 0.911, kidney_left 0.708 / 0.753 at k = 2 / 3).
PEER_FLOORS = {("spleen", 2): 0.81, ("spleen", 3): 0.88, ("kidney_left", 2): 0.68, ("kidney_left", 3): 0.72}


@pytest.fixture(scope="module")
def ct_bench(tmp_path_factory) -> tuple[Path, dict]:
    data = data_path("ct_abdomen").parent
    out = tmp_path_factory.mktemp("bench") / "results"
    args = ["bench", "--data", str(data), "--cases", "ct_abdomen", "--structures", "spleen", "kidney_left"]
    args += ["--backends", "interpolate"]
    assert fewshot3d_main([*args, "--k", "2", "3", "--out", str(out), "--save-predictions", "--quiet"]) == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_short_bench_writes_rows_table_and_plots(ct_bench) -> None:
    out, results = ct_bench
    # the pixel classifier runs beside Fill between slices in every bench (the peers), on the same painted slices
    assert results["config"]["backends"] == ["interpolate", "pixel-classifier"]
    peer = [r for r in results["rows"] if r["backend"] == "pixel-classifier"]
    rows = [r for r in results["rows"] if r["backend"] == "interpolate"]
    pairs = {(s, k) for s in ("spleen", "kidney_left") for k in (2, 3)}
    assert {(r["structure"], r["k"]) for r in rows} == pairs == {(r["structure"], r["k"]) for r in peer}
    assert all(r["status"] == "ok" for r in rows + peer)
    painted = {(r["structure"], r["k"]): r["painted_slices"] for r in rows}
    assert all(r["painted_slices"] == painted[r["structure"], r["k"]] for r in peer)
    assert all(r["dice"] >= PEER_FLOORS[r["structure"], r["k"]] for r in peer), [
        (r["structure"], r["k"], r["dice"]) for r in peer
    ]
    assert all(r["hd95_mm"] > 0 for r in rows)
    # Fill between slices is deterministic: floors a few hundredths under the measured Dice (spleen 0.662 / 0.781,
    # kidney_left 0.610 / 0.778 at k = 2 / 3), and more painted slices must do better.
    floors = {("spleen", 2): 0.63, ("spleen", 3): 0.75, ("kidney_left", 2): 0.58, ("kidney_left", 3): 0.75}
    dice = {(r["structure"], r["k"]): r["dice"] for r in rows}
    assert all(floors[key] <= dice[key] <= 1 for key in floors), dice
    assert all(dice[(s, 3)] > dice[(s, 2)] for s in ("spleen", "kidney_left")), dice
    assert results["machine"]["cpu_count"] and results["machine"]["device"] == "cpu"
    assert (
        "| interpolate |" in (out / "results.md").read_text()
        and "| pixel-classifier |" in (out / "results.md").read_text()
    )
    assert (out / "dice_vs_k.png").stat().st_size > 5000 and (out / "time_split.png").stat().st_size > 5000


@pytest.mark.slow
def test_dice_is_reproducible_from_the_saved_prediction(ct_bench) -> None:
    out, results = ct_bench
    reference = np.asanyarray(nib.load(DATA / "ct_abdomen" / "reference_labels.nii.gz").dataobj)
    for row in results["rows"]:
        predicted = np.asanyarray(nib.load(out / row["prediction_file"]).dataobj) == row["label_value"]
        truth = reference == row["label_value"]
        dice = 2 * np.sum(predicted & truth) / (predicted.sum() + truth.sum())
        assert dice == pytest.approx(row["dice"], abs=1e-6)
        unpainted = [s for s in range(truth.shape[AXIAL]) if s not in row["painted_slices"]]
        p, t = predicted[..., unpainted], truth[..., unpainted]
        assert 2 * np.sum(p & t) / (p.sum() + t.sum()) == pytest.approx(row["dice_unpainted"], abs=1e-6)
        support = np.asanyarray(nib.load(out / row["support_file"]).dataobj)
        painted = np.flatnonzero(np.any(support == row["label_value"], axis=(0, 1))).tolist()
        assert painted == row["painted_slices"] == protocol_slices(truth, AXIAL, row["k"])


# ----------------------------------------------------------------------------- the CLI contract


def fewshot3d(*args: str | Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "napari_fewshot3d.cli", "bench", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def assert_input_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


@pytest.mark.slow
def test_cli_refuses_a_missing_data_folder_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_input_error(fewshot3d("--data", tmp_path / "nowhere", "--out", out), "no such data folder")
    assert not out.exists()


@pytest.mark.slow
def test_cli_refuses_an_unknown_backend_a_folder_without_cases_and_an_unknown_structure(tmp_path: Path) -> None:
    assert_input_error(fewshot3d("--data", tmp_path, "--backends", "nope"), "unknown backend 'nope'")
    assert_input_error(fewshot3d("--data", tmp_path), "no case found")
    write_case(tmp_path / "a", slab(10, 19), {1: "liver"})
    assert_input_error(fewshot3d("--data", tmp_path, "--structures", "spleen"), "unknown structure 'spleen'")
