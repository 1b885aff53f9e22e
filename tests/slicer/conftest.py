"""Fixtures for the Slicer module's tests: its folder on the path, and Slicer's own core to run it on.

The 3D Slicer application cannot be installed here, but its core can: the ``slicer-core`` wheel (Slicer's MRML
scene, nodes, storage nodes and logics, and ``slicer.util``, without Qt). ``slicer_app`` adds the few application
parts that the wheel lacks. Tests that need it skip, with the reason, where the wheel is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2] / "slicer_module" / "FewShot3D"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))


@pytest.fixture(scope="session")
def slicer(tmp_path_factory):
    """Slicer's core (the slicer-core wheel) with the stand-in application of ``slicer_app`` published on it."""
    pytest.importorskip("slicer.util", reason="Slicer's core is not installed (pip install slicer-core)")
    from . import slicer_app

    slicer_app.install(tmp_path_factory.mktemp("slicer-temporary"))
    import slicer

    return slicer


@pytest.fixture
def scene(slicer):
    """Slicer's scene, emptied before each test (as the module's own test does in ``setUp``)."""
    slicer.mrmlScene.Clear(0)
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(0)


@pytest.fixture(scope="session")
def fewshot3d(slicer):
    """The module file FewShot3D.py, imported unchanged on Slicer's core."""
    import FewShot3D

    return FewShot3D
