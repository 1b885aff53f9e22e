"""Helpers for the Slicer module's tests: its pure-Python layer on the path, and volumes as a Slicer node holds them.

3D Slicer cannot be installed here, so a "node" is what Slicer's volume node keeps: a real ``vtkImageData`` with
the voxels and a real ``vtkMatrix4x4`` IJK-to-RAS, built from the file with SimpleITK the way Slicer's reader
does (ITK's LPS geometry turned into RAS), independently of the engine's own readers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

MODULE_DIR = Path(__file__).resolve().parents[2] / "slicer_module" / "FewShot3D"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

_RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class NodeParts:
    """What a scalar volume node holds: voxels (vtkImageData) and geometry (vtkMatrix4x4), plus the ITK image."""

    image_data: object
    ijk_to_ras: object
    itk_image: object

    def kji(self) -> np.ndarray:
        """The voxels as ``slicer.util.arrayFromVolume`` gives them."""
        import SimpleITK as sitk

        return sitk.GetArrayFromImage(self.itk_image)


def node_parts(itk_image) -> NodeParts:
    """A Slicer-style volume node's content from an ITK image (as Slicer's ITK-based reader makes it)."""
    import SimpleITK as sitk
    import vtk
    from vtkmodules.util.numpy_support import numpy_to_vtk

    kji = sitk.GetArrayFromImage(itk_image)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(*itk_image.GetSize())
    scalars = numpy_to_vtk(np.ascontiguousarray(kji).ravel(), deep=True)
    image_data.GetPointData().SetScalars(scalars)
    lps = np.eye(4)
    lps[:3, :3] = np.array(itk_image.GetDirection()).reshape(3, 3) * np.array(itk_image.GetSpacing())
    lps[:3, 3] = itk_image.GetOrigin()
    ras = _RAS_FROM_LPS @ lps
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, ras[r, c])
    return NodeParts(image_data, matrix, itk_image)


def read_itk(*parts: str, first: int | None = None, stop: int | None = None):
    """A file from ../shared/data with SimpleITK, optionally only k slices [first, stop) (geometry kept)."""
    import SimpleITK as sitk

    from ..conftest import data_path

    image = sitk.ReadImage(str(data_path(*parts)))
    if first is not None:
        image = image[:, :, first:stop]
    return image


def world_of(ijk_to_ras, ijk: np.ndarray) -> np.ndarray:
    """RAS positions of voxel indices (rows of i, j, k) through the node's vtkMatrix4x4 itself."""
    return np.array([ijk_to_ras.MultiplyPoint((*map(float, v), 1.0))[:3] for v in ijk])


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
