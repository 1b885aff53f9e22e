"""The module's Logic on Slicer's own core (the slicer-core wheel): real scene, nodes, storage nodes and logics.

Volumes are loaded by Slicer's readers, painted segments are written with ``slicer.util`` into real segmentation
nodes, the module reads them, runs the engine and writes the prediction back; every check of where a voxel lies goes
through Slicer's own geometry (a segment's internal labelmap and its image-to-world matrix, the nodes' transforms) or
through the files Slicer's storage nodes wrote, re-read by Slicer and by the engine. ``tests/slicer/slicer_app.py``
supplies only what the wheel lacks (the application object, module lookup, the I/O manager, the scripted-module base
classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.masks import dice
from napari_fewshot3d.progress import Task
from napari_fewshot3d.support import SupportSet
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import read_image, read_labels, write_image

from ..conftest import data_path

SPLEEN, LIVER = 1, 5
STRUCTURES = {"liver": LIVER, "spleen": SPLEEN}
#: A parent transform the way a registration leaves one: a shift that is not a whole number of 3 mm voxels.
SHIFT = (12.0, -5.0, 7.5)


@dataclass
class Case:
    """A volume file Slicer loads, and its reference labels as the engine reads them (same grid)."""

    image_path: object
    reference: Volume


def _case(name: str, tmp_path) -> Case:
    if name == "oblique":
        return _oblique_case(tmp_path)
    folder = data_path(f"{name}_abdomen")
    return Case(folder / "image.nii.gz", read_labels(folder / "reference_labels.nii.gz"))


def _oblique_case(tmp_path) -> Case:
    """The MR with a direction matrix that is no axis permutation (rotated 20° about S and 10° about R), as NRRD."""
    folder = data_path("mr_abdomen")
    image = read_image(folder / "image.nii.gz")
    reference = read_labels(folder / "reference_labels.nii.gz")
    a, b = np.deg2rad(20.0), np.deg2rad(10.0)
    about_s = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_r = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = image.affine.copy()
    affine[:3, :3] = about_r @ about_s @ image.affine[:3, :3]
    path = write_image(Volume(image.array, affine, "oblique"), tmp_path / "oblique.nrrd")
    return Case(path, Volume(reference.array, affine, "oblique labels"))


def _transform(slicer, kind: str):
    """A linear transform node: a shift, or a shift with a rotation (15° about A)."""
    matrix = np.eye(4)
    matrix[:3, 3] = SHIFT
    if kind == "rotated":
        c = np.deg2rad(15.0)
        matrix[:3, :3] = [[np.cos(c), 0, np.sin(c)], [0, 1, 0], [-np.sin(c), 0, np.cos(c)]]
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", f"{kind} transform")
    slicer.util.updateTransformMatrixFromArray(node, matrix)
    return node


def _to_world(slicer, node, matrix) -> np.ndarray:
    """``matrix`` (a node's local index-to-RAS) followed by the node's parent transforms, as a 4x4 array."""
    import vtk

    to_world = vtk.vtkMatrix4x4()
    slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(node.GetParentTransformNode(), None, to_world)
    return slicer.util.arrayFromVTKMatrix(to_world) @ np.asarray(matrix)


def _ijk_to_ras(slicer, volume_node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def onto_grid(mask_ijk: np.ndarray, index_to_world: np.ndarray, grid_to_world: np.ndarray, shape) -> np.ndarray:
    """The voxels of a mask, each moved by its world position onto another grid, where it must land on a voxel."""
    ijk = np.argwhere(mask_ijk)
    homogeneous = np.c_[ijk, np.ones(len(ijk))]
    there = (homogeneous @ (np.linalg.inv(grid_to_world) @ index_to_world).T)[:, :3]
    rounded = np.round(there).astype(int)
    off = np.abs(there - rounded).max(initial=0.0)
    assert off < 1e-3, f"voxels land {off:.3f} of a voxel away from the grid's voxel centres"
    inside = np.all((rounded >= 0) & (rounded < np.asarray(shape)), axis=1)
    assert inside.all(), f"{np.sum(~inside)} voxels land outside the grid"
    out = np.zeros(shape, bool)
    out[tuple(rounded.T)] = True
    return out


def segment_in_world(slicer, segmentation_node, segment_id: str, volume_node) -> np.ndarray:
    """Where Slicer itself keeps a segment (its binary labelmap, in world), as a mask on the volume's grid."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    labelmap = slicer.vtkOrientedImageData()
    assert segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    x0, _, y0, _, z0, _ = labelmap.GetExtent()
    kji = vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(tuple(reversed(labelmap.GetDimensions())))
    import vtk

    image_to_world = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(image_to_world)
    index_to_local = slicer.util.arrayFromVTKMatrix(image_to_world) @ _translation((x0, y0, z0))
    volume_grid = _to_world(slicer, volume_node, _ijk_to_ras(slicer, volume_node))
    shape = tuple(volume_node.GetImageData().GetDimensions())
    return onto_grid(
        kji.transpose(2, 1, 0) != 0, _to_world(slicer, segmentation_node, index_to_local), volume_grid, shape
    )


def _translation(offset) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


def file_on_grid(labels: Volume, grid: Volume, value: int) -> np.ndarray:
    """A label file's voxels of one value, by world position, on the input file's grid (both in the file frame)."""
    return onto_grid(labels.array == value, labels.affine, grid.affine, grid.shape)


def paint(slicer, logic, volume_node, reference: Volume, axis: int, k: int = 3):
    """What a user does with "Paint in Segment Editor": the module's new painted segmentation, liver and spleen
    painted on k slices each; returns the node, its segment ids and the painted labels ``[i, j, k]``."""
    node = logic.newPaintedSegmentation(volume_node)
    segmentation = node.GetSegmentation()
    liver_id = segmentation.GetNthSegmentID(0)
    segmentation.GetSegment(liver_id).SetName("liver")
    spleen_id = segmentation.AddEmptySegment("", "spleen", [0.2, 0.4, 0.9])
    painted = paint_slices(reference.array, [LIVER, SPLEEN], axis, k)
    for segment_id, value in ((liver_id, LIVER), (spleen_id, SPLEEN)):
        mask_kji = np.ascontiguousarray((painted == value).astype(np.uint8).transpose(2, 1, 0))
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask_kji, node, segment_id, volume_node)
    return node, {"liver": liver_id, "spleen": spleen_id}, painted


def shown_mask(slicer, output_node, segment_id, volume_node) -> np.ndarray:
    """A segment as the module reads it back (``arrayFromSegmentBinaryLabelmap`` on the input grid), ``[i, j, k]``."""
    return np.array(slicer.util.arrayFromSegmentBinaryLabelmap(output_node, segment_id, volume_node)).transpose(2, 1, 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, transform",
    [("ct", None), ("mr", None), ("ct", "shift"), ("mr", "rotated"), ("oblique", None), ("oblique", "rotated")],
)
def test_adapt_correct_readapt_export_on_slicer_nodes(fewshot3d, slicer, scene, tmp_path, name, transform):
    case = _case(name, tmp_path)
    volume_node = slicer.util.loadVolume(str(case.image_path))
    if transform:
        volume_node.SetAndObserveTransformNodeID(_transform(slicer, transform).GetID())
    logic = fewshot3d.FewShot3DLogic()

    # Slicer's reader and the engine's agree on the voxels and their place (in the volume's own frame).
    image = logic.volumeOf(volume_node)
    from_file = read_image(case.image_path)
    assert image.same_grid(from_file) and image.same_grid(case.reference)
    np.testing.assert_array_equal(image.array, from_file.array)
    axis = image.slicing_axis("axial")

    painted_node, ids, painted = paint(slicer, logic, volume_node, case.reference, axis)
    assert painted_node.GetTransformNodeID() == volume_node.GetTransformNodeID()
    for structure, value in STRUCTURES.items():  # the paint sits where it was painted, in world
        np.testing.assert_array_equal(
            segment_in_world(slicer, painted_node, ids[structure], volume_node), painted == value
        )

    # Adapt: the support set is what Slicer hands back of the painting, the output lands on the input's voxels.
    output_node = logic.newOutputSegmentation(volume_node)
    work, finish = logic.prepareAdapt(volume_node, painted_node, output_node, "interpolate", "cpu", "axial")
    prediction = work(Task())
    expected = SupportSet.from_labels(
        image.with_array(np.where(painted == LIVER, 1, np.where(painted == SPLEEN, 2, 0)).astype(np.uint8)), axis
    )
    support = prediction.plan.support
    assert [c.name for c in support.classes] == ["liver", "spleen"]
    assert [c.slices for c in support.classes] == [c.slices for c in expected.classes]
    np.testing.assert_array_equal(support.labels.array, expected.labels.array)
    finish(prediction)
    assert output_node.GetTransformNodeID() == volume_node.GetTransformNodeID()
    predicted = {s: prediction.labels.array == n + 1 for n, s in enumerate(("liver", "spleen"))}
    for structure, value in STRUCTURES.items():
        in_world = segment_in_world(slicer, output_node, ids[structure], volume_node)
        np.testing.assert_array_equal(in_world, predicted[structure])
        np.testing.assert_array_equal(shown_mask(slicer, output_node, ids[structure], volume_node), in_world)
        assert dice(in_world, case.reference.array == value) > 0.5, structure  # the right organ, not a shifted one
    check_exports(slicer, logic, output_node, volume_node, from_file, predicted, tmp_path / "first")

    # Correct the worst unpainted liver slice in the output, as Segment Editor would, and re-adapt.
    liver = predicted["liver"]
    truth = case.reference.array == LIVER
    others = tuple(a for a in range(3) if a != axis)
    unpainted = [s for s in np.flatnonzero(truth.any(axis=others)) if s not in support.painted_slices()]
    worst = max(unpainted, key=lambda s: np.sum(np.take(liver, s, axis) != np.take(truth, s, axis)))
    where = tuple(worst if a == axis else slice(None) for a in range(3))
    fixed = liver.copy()
    fixed[where] = truth[where]
    fixed_kji = np.ascontiguousarray(fixed.astype(np.uint8).transpose(2, 1, 0))
    slicer.util.updateSegmentBinaryLabelmapFromArray(fixed_kji, output_node, ids["liver"], volume_node)
    logic.process(volume_node, painted_node, output_node, "interpolate", "cpu", "axial", readapt=True)
    assert logic.session.reviewed == {int(worst)}
    again = segment_in_world(slicer, output_node, ids["liver"], volume_node)
    np.testing.assert_array_equal(again[where], truth[where])
    final = {s: segment_in_world(slicer, output_node, ids[s], volume_node) for s in STRUCTURES}

    # Exported after each round with Slicer's writers, the painted segmentation saved as it is: the files line up
    # with the input file (a parent transform is not saved with the data), re-read by the engine and by Slicer.
    check_exports(slicer, logic, output_node, volume_node, from_file, final, tmp_path / "second")
    saved = tmp_path / "painted.seg.nrrd"
    assert slicer.util.saveNode(painted_node, str(saved))
    painted_file = read_labels(saved)
    for structure, value in STRUCTURES.items():
        [label] = [v for v, n in painted_file.metadata["class_names"].items() if n == structure]
        np.testing.assert_array_equal(file_on_grid(painted_file, from_file, label), painted == value)


def check_exports(slicer, logic, output_node, volume_node, from_file: Volume, expected: dict, folder) -> None:
    """The module's Export to .seg.nrrd and NIfTI, each file re-read by the engine and by Slicer, voxel by voxel."""
    folder.mkdir()
    seg_path = logic.exportSegmentation(output_node, volume_node, folder / "prediction.seg.nrrd")
    nifti_path = logic.exportSegmentation(output_node, volume_node, folder / "prediction.nii.gz")
    from_seg = read_labels(seg_path)
    names = from_seg.metadata["class_names"]
    for structure, mask in expected.items():
        [value] = [v for v, n in names.items() if n == structure]
        np.testing.assert_array_equal(file_on_grid(from_seg, from_file, value), mask)
    from_nifti = read_labels(nifti_path)
    assert from_nifti.same_grid(from_file)
    for n, mask in enumerate(expected.values()):
        np.testing.assert_array_equal(from_nifti.array == n + 1, mask)

    reloaded = slicer.util.loadSegmentation(seg_path)
    reloaded.SetAndObserveTransformNodeID(volume_node.GetTransformNodeID())
    label_node = slicer.util.loadLabelVolume(nifti_path)
    np.testing.assert_allclose(_ijk_to_ras(slicer, label_node), _ijk_to_ras(slicer, volume_node), atol=1e-4)
    label_kji = slicer.util.arrayFromVolume(label_node)
    for n, (structure, mask) in enumerate(expected.items()):
        segment_id = reloaded.GetSegmentation().GetSegmentIdBySegmentName(structure)
        np.testing.assert_array_equal(segment_in_world(slicer, reloaded, segment_id, volume_node), mask)
        np.testing.assert_array_equal(label_kji.transpose(2, 1, 0) == n + 1, mask)
    slicer.mrmlScene.RemoveNode(reloaded)
    slicer.mrmlScene.RemoveNode(label_node)


@pytest.mark.slow
def test_the_modules_own_self_test_passes_on_slicer_core(fewshot3d, scene):
    """``FewShot3DTest``, run as Slicer's test runner runs it: the MNI152 sample, adapt, correct, re-adapt."""
    test = fewshot3d.FewShot3DTest()
    test.runTest()
    assert scene.GetFirstNodeByName("painted") is not None  # it ran in this scene, not in one of its own


def test_the_parameter_node_is_one_per_scene_and_keeps_nodes_and_choices(fewshot3d, slicer, scene):
    from FewShot3DLib import dependencies

    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "input")
    logic = fewshot3d.FewShot3DLogic()
    parameters = logic.getParameterNode()
    assert (parameters.backend, parameters.device, parameters.axis) == (dependencies.DEFAULT_BACKEND, "auto", "axial")
    assert parameters.inputVolume is None
    parameters.inputVolume = volume
    parameters.backend = "interpolate"
    # Another logic (the widget's, after a module reload) finds the same node in the scene, with what was set.
    again = fewshot3d.FewShot3DLogic().getParameterNode()
    assert again.parameterNode.GetID() == parameters.parameterNode.GetID()
    assert again.inputVolume.GetID() == volume.GetID() and again.backend == "interpolate"
    assert again.parameterNode.GetAttribute("ModuleName") == "FewShot3D"
    with pytest.raises(ValueError, match="must be one of"):
        again.device = "tpu"
    with pytest.raises(TypeError, match="vtkMRMLSegmentationNode"):
        again.outputSegmentation = volume


def test_the_slicer_package_is_the_wheels_alone(slicer):
    """A `slicer/` folder on sys.path joins the wheel's package and is imported: tests/slicer never is."""
    from pathlib import Path

    [folder] = slicer.__path__
    assert Path(folder, "slicer_core.py").exists()
    assert Path(slicer.util.__file__).parent == Path(folder)


@pytest.mark.slow
def test_default_backend_adapts_saves_and_applies_on_slicer_nodes(fewshot3d, slicer, scene, tmp_path, monkeypatch):
    """The default (hybrid: with no interior painted slice, selfprompt-sam's LiteMedSAM) on 5 CT slices: liver
    painted on 2, the rest segmented; the saved model (both learners and the choice) applies."""
    from FewShot3DLib import dependencies
    from napari_fewshot3d.backends.selfprompt.cache import CACHE_ENV
    from napari_fewshot3d.errors import InputError

    from ..conftest import ct_slab

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "embeddings"))
    image, reference = ct_slab(88, 93)
    volume_node = slicer.util.loadVolume(str(write_image(image, tmp_path / "ct_5_slices.nii.gz")))
    liver = reference.array == LIVER
    logic = fewshot3d.FewShot3DLogic()
    painted_node = logic.newPaintedSegmentation(volume_node)
    liver_id = painted_node.GetSegmentation().GetNthSegmentID(0)
    painted_node.GetSegmentation().GetSegment(liver_id).SetName("liver")
    paint = np.zeros_like(liver)
    paint[:, :, [1, 3]] = liver[:, :, [1, 3]]
    paint_kji = np.ascontiguousarray(paint.astype(np.uint8).transpose(2, 1, 0))
    slicer.util.updateSegmentBinaryLabelmapFromArray(paint_kji, painted_node, liver_id, volume_node)

    output_node = logic.newOutputSegmentation(volume_node)
    logic.process(volume_node, painted_node, output_node, dependencies.DEFAULT_BACKEND, "cpu", "axial")
    predicted = shown_mask(slicer, output_node, liver_id, volume_node).astype(bool)
    rest = [0, 2, 4]
    assert dice(predicted[:, :, rest], liver[:, :, rest]) >= 0.85

    path = logic.saveModel(tmp_path / "liver.fewshot3d.zip")
    assert path.exists() and not list(tmp_path.glob("*.partial*"))
    applied_node = logic.newOutputSegmentation(volume_node)
    work, finish = logic.prepareApplyModel(str(path), volume_node, applied_node, "cpu")
    finish(work(Task()))
    segmentation = applied_node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    assert segmentation.GetSegment("fewshot_1").GetName() == "liver"
    assert dice(segment_in_world(slicer, applied_node, "fewshot_1", volume_node), liver) >= 0.85
    assert not logic.canReadapt()  # an applied model has no painted support to re-adapt with
    with pytest.raises(InputError, match="nothing to re-adapt"):
        logic.prepareAdapt(volume_node, painted_node, applied_node, dependencies.DEFAULT_BACKEND, "cpu", "axial", True)


@pytest.mark.slow  # applying anyway encodes 4 MR slices
def test_a_ct_model_on_an_mr_volume_node_is_refused_unless_applied_anyway(
    fewshot3d, slicer, scene, tmp_path, monkeypatch
):
    """The committed CT spleen model (format 2) on an MR slab Slicer loaded: the widget's question comes from
    modelRefusal; refused, the job fails with that reason and the output stays empty; forced, it applies and warns."""
    from pathlib import Path

    from napari_fewshot3d.backends.selfprompt.cache import CACHE_ENV
    from napari_fewshot3d.errors import InputError

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "embeddings"))
    model = Path(__file__).resolve().parents[1] / "data" / "selfprompt_spleen_v2.fs3d"
    from ..conftest import case_slab

    slab = write_image(case_slab("mr_abdomen", 8, 12)[0], tmp_path / "mr_slab.nii.gz")
    volume_node = slicer.util.loadVolume(str(slab))
    logic = fewshot3d.FewShot3DLogic()
    refusal = logic.modelRefusal(str(model), volume_node)
    assert refusal.startswith("the model was adapted on CT and this volume looks like MR")
    output_node = logic.newOutputSegmentation(volume_node)
    work, finish = logic.prepareApplyModel(str(model), volume_node, output_node, "cpu")
    with pytest.raises(InputError, match="adapted on CT and this volume looks like MR"):
        work(Task())
    assert output_node.GetSegmentation().GetNumberOfSegments() == 0
    work, finish = logic.prepareApplyModel(str(model), volume_node, output_node, "cpu", force=True)
    said = finish(work(Task()))
    assert said.startswith("Applied selfprompt_spleen_v2.fs3d")
    assert "warning: forced: the model was adapted on CT" in said
    assert output_node.GetSegmentation().GetNumberOfSegments() == 1


def test_nodes_the_logic_refuses(fewshot3d, slicer, scene):
    from napari_fewshot3d.errors import InputError

    volume_node = slicer.util.addVolumeFromArray(np.zeros((4, 5, 6), np.int16), name="input")
    logic = fewshot3d.FewShot3DLogic()
    painted_node = logic.newPaintedSegmentation(volume_node)
    output_node = logic.newOutputSegmentation(volume_node)
    with pytest.raises(InputError, match="must differ from the painted one"):
        logic.prepareAdapt(volume_node, painted_node, painted_node, "interpolate", "cpu", "axial")
    volume_node.SetAndObserveTransformNodeID(_transform(slicer, "shift").GetID())
    with pytest.raises(InputError, match="under different transforms"):
        logic.prepareAdapt(volume_node, painted_node, output_node, "interpolate", "cpu", "axial")
    painted_node.SetAndObserveTransformNodeID(volume_node.GetTransformNodeID())
    with pytest.raises(InputError, match="nothing painted"):
        logic.prepareAdapt(volume_node, painted_node, output_node, "interpolate", "cpu", "axial")


@pytest.mark.parametrize("name", ["mr", "oblique"])
def test_a_seg_nrrd_painted_elsewhere_is_read_by_slicer_as_the_same_support(fewshot3d, slicer, scene, tmp_path, name):
    """A painting saved by the engine (a .seg.nrrd from napari or the CLI) loaded into Slicer as the painted node."""
    from napari_fewshot3d.volume_io import write_labels

    case = _case(name, tmp_path)
    volume_node = slicer.util.loadVolume(str(case.image_path))
    axis = case.reference.slicing_axis("axial")
    painted = paint_slices(case.reference.array, [LIVER, SPLEEN], axis, k=3)
    path = write_labels(
        case.reference.with_array(painted), tmp_path / "painted.seg.nrrd", {LIVER: "liver", SPLEEN: "spleen"}
    )
    painted_node = slicer.util.loadSegmentation(str(path))
    logic = fewshot3d.FewShot3DLogic()
    segments = logic.segmentsOf(painted_node, volume_node)
    assert [s.name for s in segments] == ["spleen", "liver"]  # in label order, as the file lists them
    for segment, value in zip(segments, (SPLEEN, LIVER), strict=True):
        np.testing.assert_array_equal(segment.mask.transpose(2, 1, 0) != 0, painted == value)
    plan = logic.session.plan(logic.volumeOf(volume_node), "axial", segments)
    assert plan.support.painted_slices() == tuple(
        sorted(set(np.flatnonzero(painted.any(axis=tuple(a for a in range(3) if a != axis)))))
    )


def test_scribbles_with_a_background_segment_on_slicer_nodes(fewshot3d, slicer, scene, tmp_path):
    """Strokes in the liver and a Background segment's arcs around it on 3 slices of the CT: the output has the liver
    alone (no Background segment), through every stroke and over none of the background strokes."""
    from napari_fewshot3d.bench.strokes import scribble_slices

    case = _case("ct", tmp_path)
    volume_node = slicer.util.loadVolume(str(case.image_path))
    reference = case.reference
    logic = fewshot3d.FewShot3DLogic()
    node = logic.newPaintedSegmentation(volume_node)
    liver_id = node.GetSegmentation().GetNthSegmentID(0)
    node.GetSegmentation().GetSegment(liver_id).SetName("liver")
    background_id = logic.backgroundSegment(node)
    assert logic.backgroundSegment(node) == background_id  # one, however often asked
    assert node.GetSegmentation().GetSegment(background_id).GetName() == "Background"
    strokes = scribble_slices(paint_slices(reference.array, [LIVER], 2, 3), [LIVER], 2, 3.0, 99)
    for segment_id, value in ((liver_id, LIVER), (background_id, 99)):
        mask_kji = np.ascontiguousarray((strokes == value).astype(np.uint8).transpose(2, 1, 0))
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask_kji, node, segment_id, volume_node)

    output_node = logic.newOutputSegmentation(volume_node)
    message = logic.process(volume_node, node, output_node, "interpolate", "cpu", "axial")
    segmentation = output_node.GetSegmentation()
    assert [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())] == ["liver"]
    predicted = shown_mask(slicer, output_node, liver_id, volume_node).astype(bool)
    assert predicted[strokes == LIVER].all() and not predicted[strokes == 99].any()
    assert dice(predicted, reference.array == LIVER) > 0.6  # the bench: 0.69 for these slices painted whole
    assert "liver: 3 slices, 3 of them scribbled" in message
