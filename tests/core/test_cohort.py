"""`fewshot3d apply` over a cohort on a real Dask cluster (local, and a scheduler + worker started as processes):
outputs named after their inputs and equal to a single apply, failures isolated, reruns skip, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_fewshot3d import engine
from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.cohort import expand_inputs, is_cohort, machine_size, output_paths
from napari_fewshot3d.support import SupportSet
from napari_fewshot3d.volume_io import read_image, read_labels, write_image

from ..conftest import assert_input_error, ct_slab, fewshot3d

pytest.importorskip("distributed")

SPLEEN = 1


# ---------------------------------------------------------------------- inputs and names (quick)


def test_inputs_from_files_folders_and_lists(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("b.nii.gz", "a.nrrd", ".hidden.nii.gz", "notes.txt"):
        (scans / name).write_bytes(b"x")
    assert expand_inputs([str(scans)]) == [(scans / "a.nrrd").resolve(), (scans / "b.nii.gz").resolve()]
    listing = tmp_path / "cohort.csv"
    listing.write_text("path,age\nscans/b.nii.gz,61\n\nmissing.nii.gz,70\n")
    assert expand_inputs([str(listing)]) == [(scans / "b.nii.gz").resolve(), tmp_path / "missing.nii.gz"]
    tsv = tmp_path / "cohort.tsv"
    tsv.write_text(f"{scans / 'a.nrrd'}\tx\n")
    assert expand_inputs([str(tsv), str(scans / "a.nrrd")]) == [(scans / "a.nrrd").resolve()]  # once
    assert is_cohort([str(scans)]) and is_cohort([str(listing)]) and is_cohort(["a", "b"])
    assert not is_cohort([str(scans / "a.nrrd")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no image files"):
        expand_inputs([str(tmp_path / "empty")])


def test_outputs_are_named_after_inputs_and_never_collide(tmp_path):
    inputs = [Path("/d/p1/image.nii.gz"), Path("/d/p2/image.nii.gz"), Path("/d/p3/ct.nrrd"), Path("/d/series_7")]
    names = [p.name for p in output_paths(inputs, tmp_path, ".seg.nrrd")]
    assert names == ["p1_image.seg.nrrd", "p2_image.seg.nrrd", "p3_ct.seg.nrrd", "d_series_7.seg.nrrd"]
    assert [p.name for p in output_paths(inputs[2:], tmp_path, ".nii.gz")] == ["ct.nii.gz", "series_7.nii.gz"]


def test_the_local_cluster_is_sized_to_cores_and_memory():
    assert machine_size(2, 24 * 1024**3) == (1, 2)
    assert machine_size(16, 128 * 1024**3) == (8, 2)
    assert machine_size(16, 8 * 1024**3) == (2, 8)  # memory for two workers' peaks only
    assert machine_size(1, 1024**3) == (1, 1)


# ---------------------------------------------------------------------- a real cohort (slow)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """A spleen model adapted on one CT slab, and four other slabs of the same CT as the cohort."""
    folder = tmp_path_factory.mktemp("cohort")
    image, ref = ct_slab(92, 100)
    truth = np.where(ref.array == SPLEEN, SPLEEN, 0).astype(np.uint8)
    support = SupportSet.from_labels(image.with_array(paint_slices(truth, [SPLEEN], 2, k=2)), 2, {SPLEEN: "spleen"})
    _, model = engine.run(image, support, get_backend("selfprompt-sam"), "cpu")
    model_file = engine.save_model(model, folder / "spleen.fewshot3d.zip")
    scans = folder / "scans"
    scans.mkdir()
    inputs = []
    for first in (86, 90, 96):
        slab, _ = ct_slab(first, first + 5)
        inputs.append(write_image(slab, scans / f"slab{first}.nii.gz"))
    (scans / "broken.nii.gz").write_bytes(b"not a volume")
    return {"folder": folder, "model": model_file, "scans": scans, "inputs": inputs}


@pytest.mark.slow
def test_a_cohort_on_a_local_cluster_isolates_failures_and_skips_on_rerun(cohort, tmp_path):
    out = tmp_path / "results"
    listing = tmp_path / "more.csv"
    listing.write_text("path\nnowhere/missing.nii.gz\n")
    first = fewshot3d("apply", cohort["model"], cohort["scans"], listing, "--out", out, "--workers", "1")
    assert first.returncode == 3, first.stderr
    lines = first.stderr.strip().splitlines()
    assert "cohort: 3 done, 0 skipped, 2 failed (of 5)" in first.stderr, first.stderr
    failures = [line for line in lines if line.startswith("failed: ")]
    assert len(failures) == 2 and any("broken.nii.gz" in f for f in failures) and any("missing" in f for f in failures)
    assert "Traceback" not in first.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == ["slab86.nii.gz", "slab90.nii.gz", "slab96.nii.gz"]  # no partial files beside them
    model = engine.load_model(cohort["model"])
    for path in cohort["inputs"]:  # each equals a single in-process apply, on its input's own grid
        image = read_image(path)
        again = read_labels(out / path.name)
        np.testing.assert_array_equal(again.array, engine.segment(model, image, device="cpu").array)
        np.testing.assert_allclose(again.affine, image.affine, atol=1e-4)
    assert any(read_labels(out / p.name).array.any() for p in cohort["inputs"])  # it found the spleen somewhere

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    rerun = fewshot3d("apply", cohort["model"], *cohort["inputs"], "--out", out, "--workers", "1")
    assert rerun.returncode == 0 and "0 done, 3 skipped, 0 failed" in rerun.stderr, rerun.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    redo = fewshot3d("apply", cohort["model"], *cohort["inputs"][:1], out / "x", "--out", out, "--overwrite")
    assert redo.returncode == 3 and "1 done, 0 skipped, 1 failed" in redo.stderr, redo.stderr


@pytest.mark.slow
def test_a_cohort_on_a_running_dask_cluster(cohort, tmp_path):
    """A scheduler and a worker started as a department would (`dask scheduler`, `dask worker`), on loopback."""
    scheduler_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
    scheduler = subprocess.Popen(
        [*dask, "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(scheduler_file), "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = subprocess.Popen(
            [*worker_cmd, "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out = tmp_path / "results"
        result = fewshot3d("apply", cohort["model"], *cohort["inputs"][:2], "--out", out, "--scheduler", address)
        assert result.returncode == 0, result.stderr
        assert "cohort: 2 done, 0 skipped, 0 failed (of 2)" in result.stderr
        assert sorted(p.name for p in out.iterdir()) == ["slab86.nii.gz", "slab90.nii.gz"]
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


@pytest.mark.slow
def test_ctrl_c_cancels_a_cohort_cleanly(cohort, tmp_path):
    """Ctrl-C once the first scan is done: the rest is not written, the exit is 130, no traceback. Twelve scans (the
    three slabs under other names), so that a fast machine cannot finish them all before the signal arrives."""
    out, scans = tmp_path / "results", tmp_path / "many"
    scans.mkdir()
    for n in range(12):
        (scans / f"scan{n:02d}.nii.gz").write_bytes(cohort["inputs"][n % 3].read_bytes())
    process = subprocess.Popen(
        [sys.executable, "-m", "napari_fewshot3d.cli", "apply", str(cohort["model"]), str(scans), "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    said = []
    for line in process.stderr:  # wait for the first result: the cluster is up and scans are on their way
        said.append(line)
        if " done " in line:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    stderr = "".join(said) + (rest or "")
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    written = [p for p in out.iterdir()]
    assert not [p for p in written if p.name.startswith(".")]  # no half-written file left
    assert 1 <= len(written) < 12, stderr


@pytest.mark.slow
def test_bad_cohort_arguments_exit_2_with_one_line(cohort, tmp_path):
    a_file = tmp_path / "taken.nii.gz"
    a_file.write_bytes(b"x")
    inputs = cohort["inputs"][:2]
    assert_input_error(fewshot3d("apply", cohort["model"], *inputs, "--out", a_file), "is a file")
    assert_input_error(
        fewshot3d("apply", cohort["model"], *inputs, "--out", tmp_path / "o", "--workers", "0"), "1 or more"
    )
    assert_input_error(fewshot3d("apply", tmp_path / "none.zip", *inputs, "--out", tmp_path / "o"), "no such model")
    unreachable = fewshot3d(
        "apply", cohort["model"], *inputs, "--out", tmp_path / "o", "--scheduler", "tcp://127.0.0.1:9"
    )
    assert_input_error(unreachable, "cannot reach the Dask scheduler")


def test_workers_sharing_a_cache_folder_never_tear_a_slice(tmp_path):
    """Several threads (a worker running several tasks) store the same slice of the same volume at once."""
    import threading

    from napari_fewshot3d.backends.selfprompt.cache import EmbeddingCache

    caches = [EmbeddingCache(tmp_path) for _ in range(6)]
    slices = [np.full((64, 16, 16), n, np.float16) for n in range(len(caches))]
    for _ in range(20):
        start = threading.Barrier(len(caches))

        def store(n: int, barrier: threading.Barrier) -> None:
            barrier.wait()
            caches[n].put("volume", 0, slices[n])

        threads = [threading.Thread(target=store, args=(n, start)) for n in range(len(caches))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(cache.use_disk for cache in caches)  # no write failed (and silently fell back to memory)
        stored = np.load(tmp_path / "volume" / "00000.npy")
        assert any(np.array_equal(stored, s) for s in slices)
    assert not list((tmp_path / "volume").glob("*.tmp"))


@pytest.mark.slow
def test_without_dask_a_cohort_runs_one_volume_after_another(cohort, tmp_path, monkeypatch):
    from napari_fewshot3d.cohort import DONE, run_cohort

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the cohort extra were not installed
    said = []
    inputs = cohort["inputs"][:2]
    outputs = output_paths(inputs, tmp_path, ".nii.gz")
    outcomes = run_cohort(cohort["model"], inputs, outputs, device="cpu", say=said.append)
    assert [o.status for o in outcomes] == [DONE, DONE] and all(p.is_file() for p in outputs)
    assert len(said) == 1 and "pip install 'napari-fewshot3d[cohort]'" in said[0]


def test_a_volume_of_another_modality_fails_alone_with_its_reason_and_writes_nothing(tmp_path):
    """In a cohort a CT model meets an MR scan: that input fails with the refusal (naming --force), before any work."""
    from napari_fewshot3d.cohort import FAILED, apply_one
    from napari_fewshot3d.volume import Volume

    model = (Path(__file__).resolve().parents[1] / "data" / "selfprompt_spleen_v2.fs3d").read_bytes()
    mr = Volume(np.random.default_rng(0).uniform(0, 800, (16, 16, 4)).astype(np.float32), np.eye(4))
    write_image(mr, tmp_path / "mr.nii.gz")
    outcome = apply_one(model, str(tmp_path / "mr.nii.gz"), str(tmp_path / "out.nii.gz"), "cpu", 1)
    assert outcome.status == FAILED and "looks like MR" in outcome.reason and "--force" in outcome.reason
    assert not (tmp_path / "out.nii.gz").exists()
