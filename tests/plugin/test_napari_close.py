"""Closing napari while the plugin works ends the process cleanly (exit 0), never an abort (exit 134)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("napari")

from .conftest import needs_litemedsam  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "job",
    [
        pytest.param("embedding", marks=needs_litemedsam),
        "adapt",
    ],
)
def test_closing_napari_while_a_job_runs_exits_cleanly(job, ct_case, tmp_path):
    env = {**os.environ, "FEWSHOT3D_CACHE_DIR": str(tmp_path / "embeddings"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.plugin.close_while_busy", str(ct_case["image"]), job, "4"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert "closing napari during" in done.stdout, output[-3000:]
    assert done.returncode == 0, output[-3000:]
    assert "has been deleted" not in output, output[-3000:]
