"""Shared fixtures and the run's rules: where the real test volumes live, small synthetic volumes, the embedding
cache kept out of the user's folder, and — in CI — no test passing by skipping for a missing prerequisite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_fewshot3d.backends.selfprompt.cache import CACHE_ENV
from napari_fewshot3d.volume import Volume

#: Real CT/MR volumes with reference labels, kept beside the project (never copied into it).
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_path(*parts: str) -> Path:
    """A path inside ../shared/data, or skip the test with the reason when it is absent (a failure with CI=true)."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (the shared data folder sits beside the repository)")
    return path


@pytest.fixture
def ct_paths() -> dict[str, Path]:
    folder = data_path("ct_abdomen")
    return {"image": folder / "image.nii.gz", "labels": folder / "reference_labels.nii.gz"}


# ----------------------------------------------------------------------------- skips in CI

#: Markers for tests that need a kind of machine. Skipping them elsewhere is the only skip CI allows: a CPU-only
#: CI host cannot run a CUDA test, and a CUDA host cannot show what happens without one.
HARDWARE = {
    "cuda": (True, "needs a CUDA device; this machine has none"),
    "no_cuda": (False, "needs a machine without CUDA; this one has it"),
}
_HARDWARE_SKIP = pytest.StashKey[str]()


def in_ci() -> bool:
    """CI=true (or 1/yes), as CI services and `.ci/run` set it."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_configure(config: pytest.Config) -> None:
    for name, (wants_cuda, _) in HARDWARE.items():
        config.addinivalue_line(
            "markers", f"{name}: runs only on a machine {'with' if wants_cuda else 'without'} CUDA (an allowed skip)"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a hardware-marked test on the wrong machine, remembering that this skip is the allowed kind."""
    for name, (wants_cuda, reason) in HARDWARE.items():
        if item.get_closest_marker(name) is not None:
            import torch

            if torch.cuda.is_available() != wants_cuda:
                item.stash[_HARDWARE_SKIP] = reason
                pytest.skip(reason)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def _fail_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = _skip_reason(report)
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true: every test must run, but this one skipped ({reason}). Install what it names, or mark a test "
        f"that needs a kind of machine with one of: {', '.join(HARDWARE)}."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI a skip — missing data, display, Xvfb, a package — is a failure; only hardware skips stay skips."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail") and _HARDWARE_SKIP not in item.stash:
        _fail_in_ci(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """The same for a whole module skipped while it is collected (``pytest.importorskip`` of a missing package)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci():
        _fail_in_ci(report)


# ----------------------------------------------------------------------------- isolation


@pytest.fixture(scope="session", autouse=True)
def embedding_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    """Embeddings go to one folder of this run (shared by its tests), never the user's cache: a rerun starts cold.
    Session-wide, so module-scoped fixtures and CLI subprocesses (they inherit the environment) use it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("embeddings")))
        yield


@pytest.fixture
def cold_backend(tmp_path: Path):
    """For a test that asserts cold behaviour: a selfprompt-sam backend with an empty cache folder of its own (and,
    being new, nothing in memory); its ``encoder_clock`` counts what it encodes."""
    from napari_fewshot3d.backends import get_backend

    return get_backend("selfprompt-sam", cache_dir=tmp_path / "embeddings")


def oblique_affine(spacing=(0.8, 0.9, 2.5), origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    """An LPS-like, slightly rotated voxel-to-RAS affine, to catch code that assumes a diagonal."""
    angle = np.deg2rad(7.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]) @ np.diag(
        [-1.0, -1.0, 1.0]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


@pytest.fixture
def blob_volume() -> tuple[Volume, Volume]:
    """A 40x36x30 image with two ellipsoids (classes 1 and 2) and its labels, on an oblique grid."""
    shape = (40, 36, 30)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    labels = np.zeros(shape, np.uint8)
    labels[((i - 14) / 8) ** 2 + ((j - 18) / 9) ** 2 + ((k - 15) / 10) ** 2 <= 1] = 1
    labels[((i - 30) / 5) ** 2 + ((j - 12) / 5) ** 2 + ((k - 14) / 7) ** 2 <= 1] = 2
    rng = np.random.default_rng(0)
    image = (labels * 100 + rng.normal(0, 10, shape)).astype(np.int16)
    affine = oblique_affine()
    return Volume(image, affine, "blobs"), Volume(labels, affine, "blobs_labels")


def ct_slab(first: int, stop: int, axis: int = 2) -> tuple[Volume, Volume]:
    """Slices [first, stop) along array ``axis`` (2: axial, 1: coronal, 0: sagittal) of ct_abdomen and its reference
    labels, with the geometry of where they lie."""
    return case_slab("ct_abdomen", first, stop, axis)


def case_slab(case: str, first: int, stop: int, axis: int = 2) -> tuple[Volume, Volume]:
    """Slices [first, stop) along array ``axis`` of a shared case (e.g. ``"mr_abdomen"``) and its reference labels."""
    from napari_fewshot3d.volume_io import read_image, read_labels

    folder = data_path(case)
    image = read_image(folder / "image.nii.gz")
    reference = read_labels(folder / "reference_labels.nii.gz")
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, axis] * first
    keep = tuple(slice(first, stop) if a == axis else slice(None) for a in range(3))
    slab = Volume(image.array[keep].copy(), affine, "slab")
    return slab, slab.with_array(reference.array[keep].copy())


# ----------------------------------------------------------------------------- the CLI as a user runs it


def fewshot3d(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_fewshot3d.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=None if env is None else os.environ | env,
        timeout=600,
    )


def assert_input_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr
