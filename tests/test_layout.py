"""The tree reads as the architecture, and stays that way: import contracts (setup.cfg) hold, the engine, CLI and
bench run without napari or Qt, and no module grows past what one reader takes in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "napari_fewshot3d"
#: A module longer than this is doing more than one job (the Slicer module file is one file by Slicer's convention).
MAX_LINES = 400
#: Top-level names of GUI packages that only the napari plugin may load.
GUI_PACKAGES = {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "magicgui", "superqt"}


def test_import_contracts_hold():
    """Layers (front ends > bench > cohort > engine > backends > core), independent backends reached only through
    the registry, a headless core, and no cycles: `lint-imports` with the contracts in setup.cfg."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout and "6 kept" in result.stdout, result.stdout[-2000:]


def test_engine_cli_bench_and_backends_import_no_gui():
    """What micro-sam checks too: a server, a cluster worker or a CI job imports the tool without a display."""
    modules = [
        "napari_fewshot3d",
        "napari_fewshot3d.engine",
        "napari_fewshot3d.cli.main",
        "napari_fewshot3d.bench.run",
        "napari_fewshot3d.bench.report",
        "napari_fewshot3d.cohort",
        "napari_fewshot3d.annotation",
        "napari_fewshot3d.backends.interpolate",
        "napari_fewshot3d.backends.selfprompt.backend",
        "napari_fewshot3d.backends.swin.backend",
    ]
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({sorted(GUI_PACKAGES)!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_no_module_is_too_long():
    lengths = {p.relative_to(REPO): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert len(lengths) > 40  # the walk found the package
    assert {p: n for p, n in lengths.items() if n > MAX_LINES} == {}


def test_every_part_has_its_folder():
    """engine and core at the top; one folder per backend, the bench, the CLI and the napari plugin."""
    folders = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("__init__.py")}
    for part in ("backends", "backends/selfprompt", "backends/swin", "bench", "cli", "plugin"):
        assert f"{part}/__init__.py" in folders, part
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert not {name for name in top if name.startswith(("_", "bench_"))} - {"__init__"}
    assert (PACKAGE / "plugin" / "napari.yaml").is_file()
