"""The run's skip rule, shown on tiny test files run by a real pytest: with CI=true a skip for missing data, a
display or a package fails; without CI it stays a skip with its reason; a hardware-marked test may skip in both."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

from .conftest import in_ci

REPO = Path(__file__).resolve().parents[1]

HAS_CUDA = torch.cuda.is_available()
#: The hardware marker this machine does not satisfy (its test skips) and the one it does (its test runs).
WRONG_MACHINE, RIGHT_MACHINE = ("no_cuda", "cuda") if HAS_CUDA else ("cuda", "no_cuda")

TESTS = f"""
import pytest

from tests.conftest import data_path


def test_needs_data():
    data_path("no-such-case-anywhere")


@pytest.mark.skip(reason="no display: install Xvfb and pytest-xvfb (see .ci/run)")
def test_needs_a_display():
    pass


def test_runs():
    assert True


@pytest.mark.{WRONG_MACHINE}
def test_on_the_other_kind_of_machine():
    pass


@pytest.mark.{RIGHT_MACHINE}
def test_on_this_kind_of_machine_but_without_its_data():
    data_path("no-such-case-anywhere")


@pytest.mark.xfail(reason="a known bug, not a missing prerequisite", strict=True)
def test_known_bug():
    assert False
"""

MISSING_PACKAGE = """
import pytest

pytest.importorskip("a_package_nobody_installed")


def test_uses_it():
    pass
"""


def outcomes(tmp_path: Path, ci: str | None) -> tuple[dict[str, str], subprocess.CompletedProcess]:
    """Run the tiny files with our conftest as a plugin; {test name: passed/failed/skipped/error}."""
    (tmp_path / "test_tiny.py").write_text(textwrap.dedent(TESTS))
    (tmp_path / "test_missing_package.py").write_text(MISSING_PACKAGE)
    # No installed plugins (napari, pytest-xvfb): only pytest and our conftest take part, and it starts fast.
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env |= {"PYTHONPATH": str(REPO), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    if ci is not None:
        env["CI"] = ci
    report = tmp_path / "report.xml"
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-rs"]
    command += ["--continue-on-collection-errors", f"--junitxml={report}", f"--rootdir={tmp_path}"]
    done = subprocess.run([*command, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True)
    found = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[case.get("name")] = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(
            kinds[0] if kinds else "", "passed"
        )
    return found, done


def test_in_ci_a_skip_for_a_missing_prerequisite_fails(tmp_path):
    found, done = outcomes(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert found == {
        "test_needs_data": "failed",
        "test_needs_a_display": "error",  # a skip marker acts in setup: an error, which fails the run as well
        "test_runs": "passed",
        "test_on_the_other_kind_of_machine": "skipped",
        "test_on_this_kind_of_machine_but_without_its_data": "failed",
        "test_known_bug": "skipped",  # junit's word for xfailed
        "test_missing_package": "error",  # the module, at collection
    }, done.stdout
    assert "CI=true: every test must run, but this one skipped (Skipped: real test data not found" in done.stdout
    assert "a_package_nobody_installed" in done.stdout
    assert "1 skipped" in done.stdout and "1 xfailed" in done.stdout  # -rs: the allowed skip, with its reason
    assert "SKIPPED [1]" in done.stdout and ("needs a CUDA device" in done.stdout or "without CUDA" in done.stdout)


def test_outside_ci_the_same_tests_skip_with_their_reasons(tmp_path):
    found, done = outcomes(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert found == {
        "test_needs_data": "skipped",
        "test_needs_a_display": "skipped",
        "test_runs": "passed",
        "test_on_the_other_kind_of_machine": "skipped",
        "test_on_this_kind_of_machine_but_without_its_data": "skipped",
        "test_known_bug": "skipped",
        "test_missing_package": "skipped",
    }, done.stdout
    assert "real test data not found at" in done.stdout and "no display: install Xvfb" in done.stdout
    assert "could not import 'a_package_nobody_installed'" in done.stdout
    assert "needs a CUDA device" in done.stdout or "needs a machine without CUDA" in done.stdout


def test_ci_is_read_as_ci_services_set_it(monkeypatch):
    for value, meant in (("true", True), ("1", True), ("TRUE", True), ("false", False), ("0", False), ("", False)):
        monkeypatch.setenv("CI", value)
        assert in_ci() is meant, value
    monkeypatch.delenv("CI")
    assert not in_ci()
