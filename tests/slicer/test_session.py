"""The module's whole adapt / re-adapt / save / apply path on real CT data, outside Slicer.

``FewShot3DLogic`` in FewShot3D.py only reads nodes (``volumeOf``, ``segmentsOf``) and writes segments
(``showSegments``); between those it calls exactly what is called here: ``FewShotSession.plan``, the engine job in a
``BackgroundJob`` polled like its QTimer does, ``record`` and ``Prediction.segments``. The input comes as a Slicer
volume node holds it (real vtkImageData + vtkMatrix4x4) and the painted segments as ``[k, j, i]`` masks, the way
``arrayFromSegmentBinaryLabelmap`` returns them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("vtk", reason="the Slicer module's tests need the vtk wheel (pip install vtk)")

from FewShot3DLib.geometry import Segment, kji_from_ijk, volume_from_image_data  # noqa: E402
from FewShot3DLib.session import FewShotSession, apply_model  # noqa: E402
from FewShot3DLib.worker import DONE, BackgroundJob  # noqa: E402
from napari_fewshot3d.cache import CACHE_ENV  # noqa: E402
from napari_fewshot3d.errors import InputError  # noqa: E402
from napari_fewshot3d.progress import Task  # noqa: E402
from napari_fewshot3d.protocol import dice, paint_slices  # noqa: E402

from .conftest import node_parts, read_itk, world_of  # noqa: E402

SPLEEN, LIVER = 1, 5
FIRST, STOP = 84, 96  # axial slices of ct_abdomen through liver and spleen
WAIT_S = 300


@pytest.fixture(scope="module")
def ct():
    """The slab as a volume node holds it, the full reference file, and the slab's reference [i, j, k]."""
    node = node_parts(read_itk("ct_abdomen", "image.nii.gz", first=FIRST, stop=STOP))
    reference_file = read_itk("ct_abdomen", "reference_labels.nii.gz")
    import SimpleITK as sitk

    reference = sitk.GetArrayFromImage(reference_file).transpose(2, 1, 0)[:, :, FIRST:STOP]
    return node, reference_file, reference


def painted_segments(reference: np.ndarray, k: int = 3) -> list[Segment]:
    """What a user paints in Segment Editor: liver and spleen on k slices each, as Slicer's [k, j, i] masks."""
    painted = paint_slices(reference, [SPLEEN, LIVER], 2, k=k)
    return [
        Segment("Segment_1", "spleen", (0.2, 0.4, 0.9), kji_from_ijk((painted == SPLEEN).astype(np.uint8))),
        Segment("Segment_2", "liver", (0.8, 0.3, 0.2), kji_from_ijk((painted == LIVER).astype(np.uint8))),
    ]


def run_polled(work) -> tuple[object, list[float]]:
    """Run an engine job the way the widget does: in a BackgroundJob, polled until it ends."""
    job = BackgroundJob("adapt and segment", work).start()
    fractions = []
    status = job.poll()
    while not status.finished:
        fractions.append(status.fraction)
        status = job.wait(0.05)
    assert status.state == DONE, status.message
    return job.result, fractions + [status.fraction]


def dice_in_file_space(mask_kji: np.ndarray, node, reference_file, value: int) -> float:
    """Dice of an output mask against the reference file, matching voxels by world position only.

    Each predicted voxel goes through the input node's IJK-to-RAS matrix to RAS, then to LPS and into the
    reference file's own index space; it must land exactly on a voxel there.
    """
    kji = np.argwhere(mask_kji)
    world_ras = world_of(node.ijk_to_ras, kji[:, ::-1])
    hits = set()
    for x, y, z in world_ras:
        index = reference_file.TransformPhysicalPointToContinuousIndex((-x, -y, z))
        rounded = tuple(int(round(c)) for c in index)
        assert np.allclose(index, rounded, atol=1e-3), "an output voxel is off the input grid"
        hits.add(rounded)
    import SimpleITK as sitk

    reference = sitk.GetArrayFromImage(reference_file).transpose(2, 1, 0) == value
    reference[:, :, :FIRST] = False
    reference[:, :, STOP:] = False
    truth = {tuple(int(c) for c in v) for v in np.argwhere(reference)}
    return 2 * len(hits & truth) / (len(hits) + len(truth))


@pytest.fixture(scope="module")
def adapted(ct):
    node, _, reference = ct
    image = volume_from_image_data(node.image_data, node.ijk_to_ras, "ct slab")
    painted = painted_segments(reference)
    before = [s.mask.copy() for s in painted]
    session = FewShotSession()
    session.select("vtkMRMLScalarVolumeNode1", "axial")
    plan = session.plan(image, "axial", painted)
    prediction, fractions = run_polled(lambda task: session.adapt_and_segment(plan, "interpolate", "cpu", task))
    session.record(prediction)
    return session, image, painted, before, plan, prediction, fractions


@pytest.mark.slow
def test_adapt_and_segment_lines_up_with_the_input_in_world_space(ct, adapted):
    node, reference_file, _ = ct
    _, _, painted, before, plan, prediction, fractions = adapted
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    segments = prediction.segments()
    assert [(s.segment_id, s.name) for s in segments] == [("Segment_1", "spleen"), ("Segment_2", "liver")]
    assert segments[0].color == painted[0].color
    shape_kji = tuple(reversed(node.image_data.GetDimensions()))
    assert all(s.mask.shape == shape_kji for s in segments)
    for segment, value, floor in ((segments[0], SPLEEN, 0.8), (segments[1], LIVER, 0.78)):
        assert dice_in_file_space(segment.mask, node, reference_file, value) >= floor, segment.name
    # Painted slices keep exactly what was painted, and the painted masks themselves are untouched.
    for segment, paint in zip(segments, painted, strict=True):
        for k in plan.support.painted_slices():
            np.testing.assert_array_equal(segment.mask[k], paint.mask[k])
    for paint, copy in zip(painted, before, strict=True):
        np.testing.assert_array_equal(paint.mask, copy)


@pytest.mark.slow
def test_readapt_uses_the_slices_corrected_in_the_output(ct, adapted):
    _, _, reference = ct
    session, image, painted, _, plan, prediction, _ = adapted
    output = prediction.segments()
    liver_out = output[1].mask.transpose(2, 1, 0)
    unpainted = [k for k in range(image.shape[2]) if k not in plan.support.painted_slices()]
    wrong = max(unpainted, key=lambda k: np.sum(liver_out[:, :, k] != (reference[:, :, k] == LIVER)))
    # The user fixes that slice in the output segmentation with Segment Editor.
    for segment, value in zip(output, (SPLEEN, LIVER), strict=True):
        segment.mask[wrong] = (reference[:, :, wrong] == value).T
    replan = session.plan(image, "axial", painted, corrected=output)
    assert replan.reviewed == {wrong}
    assert wrong in replan.support.get(2).slices and wrong in replan.support.get(1).slices

    again, _ = run_polled(lambda task: session.adapt_and_segment(replan, "interpolate", "cpu", task))
    for segment, value in zip(again.segments(), (SPLEEN, LIVER), strict=True):
        np.testing.assert_array_equal(segment.mask[wrong], (reference[:, :, wrong] == value).T)
    session.record(again)
    # A corrected slice stays support in later rounds, even with nothing new corrected.
    assert session.plan(image, "axial", painted, corrected=again.segments()).reviewed == {wrong}
    with pytest.raises(InputError, match="learns nothing"):
        session.save_model("unused.zip")


@pytest.mark.slow
def test_default_backend_adapts_saves_and_applies_on_a_few_slices(ct, tmp_path, monkeypatch):
    """selfprompt-sam (LiteMedSAM) on 5 slices: liver painted on 2, the rest segmented; the saved model applies."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "embeddings"))
    node = node_parts(read_itk("ct_abdomen", "image.nii.gz", first=88, stop=93))
    image = volume_from_image_data(node.image_data, node.ijk_to_ras, "ct 5 slices")
    reference = ct[2][:, :, 88 - FIRST : 93 - FIRST] == LIVER
    paint = np.zeros_like(reference)
    paint[:, :, [1, 3]] = reference[:, :, [1, 3]]
    painted = [Segment("Segment_1", "liver", (0.8, 0.3, 0.2), kji_from_ijk(paint.astype(np.uint8)))]
    session = FewShotSession()
    session.select("vtkMRMLScalarVolumeNode2", "axial")
    plan = session.plan(image, "axial", painted)
    prediction, _ = run_polled(lambda task: session.adapt_and_segment(plan, "selfprompt-sam", "cpu", task))
    session.record(prediction)
    liver = prediction.segments()[0].mask.transpose(2, 1, 0).astype(bool)
    rest = [0, 2, 4]
    assert dice(liver[:, :, rest], reference[:, :, rest]) >= 0.85

    path = session.save_model(tmp_path / "liver.fewshot3d.zip")
    applied = apply_model(path, image, "cpu", Task())
    [segment] = applied.segments()
    assert segment.name == "liver" and segment.segment_id == "fewshot_1"
    assert dice(segment.mask.transpose(2, 1, 0), reference) >= 0.85
    session.record(applied)
    assert not os.path.exists(tmp_path / ".liver.fewshot3d.zip.partial")
    with pytest.raises(InputError, match="nothing to re-adapt"):  # an applied model has no painted support
        session.plan(image, "axial", painted, corrected=applied.segments())


def _blob_segments(labels_ijk: np.ndarray) -> list[Segment]:
    return [
        Segment("Segment_1", "big", (1.0, 0.0, 0.0), kji_from_ijk((labels_ijk == 1).astype(np.uint8))),
        Segment("Segment_2", "small", (0.0, 1.0, 0.0), kji_from_ijk((labels_ijk == 2).astype(np.uint8))),
    ]


def test_readapt_refuses_what_it_cannot_use(blob_volume):
    image, labels = blob_volume
    painted = paint_slices(labels.array, [1, 2], 2, k=3)
    segments = _blob_segments(painted)
    session = FewShotSession()
    session.select("volume A", "axial")
    with pytest.raises(InputError, match="nothing painted"):
        session.plan(image, "axial", [Segment("Segment_1", "big", (1, 0, 0), np.zeros_like(segments[0].mask))])
    with pytest.raises(InputError, match="nothing to re-adapt"):
        session.plan(image, "axial", segments, corrected=segments)

    # Pretend the engine predicted exactly the reference, and it was shown.
    from FewShot3DLib.session import Prediction

    plan = session.plan(image, "axial", segments)
    session.record(Prediction(labels, model=None, classes=plan.classes, plan=plan))
    shown = _blob_segments(labels.array)
    assert session.plan(image, "axial", segments, corrected=shown).reviewed == set()
    with pytest.raises(InputError, match="was removed from the output"):
        session.plan(image, "axial", segments, corrected=shown[:1])
    with pytest.raises(InputError, match="painted segments changed"):
        session.plan(image, "axial", segments[:1], corrected=shown)
    # Another volume (or axis) is another annotation: nothing to re-adapt there.
    session.select("volume B", "axial")
    with pytest.raises(InputError, match="nothing to re-adapt"):
        session.plan(image, "axial", segments, corrected=shown)
