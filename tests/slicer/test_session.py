"""The module's annotation state (``FewShot3DLib.session``) on its own: adapt / re-adapt on real CT, outside Slicer.

``FewShot3DLogic`` reads nodes, then calls exactly this: ``FewShotSession.plan``, the engine job in a
``BackgroundJob`` polled like its QTimer does, ``record`` and ``Prediction.segments``; the nodes themselves, where
the voxels lie in the world, the files, and the saved-model path are tested on Slicer's own core in
``test_on_slicer_core.py``. Here the painted segments are ``[k, j, i]`` masks, as ``arrayFromSegmentBinaryLabelmap``
returns them.
"""

from __future__ import annotations

import numpy as np
import pytest

from FewShot3DLib.geometry import Segment, kji_from_ijk
from FewShot3DLib.session import FewShotSession
from FewShot3DLib.worker import DONE, BackgroundJob
from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.masks import dice

from ..conftest import ct_slab

SPLEEN, LIVER = 1, 5
FIRST, STOP = 84, 96  # axial slices of ct_abdomen through liver and spleen


@pytest.fixture(scope="module")
def ct():
    """The slab and its reference labels ``[i, j, k]``."""
    image, reference = ct_slab(FIRST, STOP)
    return image, reference.array


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


@pytest.fixture(scope="module")
def adapted(ct):
    image, reference = ct
    painted = painted_segments(reference)
    before = [s.mask.copy() for s in painted]
    session = FewShotSession()
    session.select("vtkMRMLScalarVolumeNode1", "axial")
    plan = session.plan(image, "axial", painted)
    prediction, fractions = run_polled(lambda task: session.adapt_and_segment(plan, "interpolate", "cpu", task))
    session.record(prediction)
    return session, image, painted, before, plan, prediction, fractions


@pytest.mark.slow
def test_adapt_and_segment_finds_the_painted_structures(ct, adapted):
    image, reference = ct
    _, _, painted, before, plan, prediction, fractions = adapted
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    segments = prediction.segments()
    assert [(s.segment_id, s.name) for s in segments] == [("Segment_1", "spleen"), ("Segment_2", "liver")]
    assert segments[0].color == painted[0].color
    assert prediction.labels.same_grid(image)
    assert all(s.mask.shape == tuple(reversed(image.shape)) for s in segments)
    for segment, value, floor in ((segments[0], SPLEEN, 0.8), (segments[1], LIVER, 0.78)):
        assert dice(segment.mask.transpose(2, 1, 0), reference == value) >= floor, segment.name
    # Painted slices keep exactly what was painted, and the painted masks themselves are untouched.
    for segment, paint in zip(segments, painted, strict=True):
        for k in plan.support.painted_slices():
            np.testing.assert_array_equal(segment.mask[k], paint.mask[k])
    for paint, copy in zip(painted, before, strict=True):
        np.testing.assert_array_equal(paint.mask, copy)


@pytest.mark.slow
def test_readapt_uses_the_slices_corrected_in_the_output(ct, adapted):
    _, reference = ct
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


def test_a_saved_ct_model_on_an_mr_volume_is_refused_before_any_work():
    """Slicer's "Apply model" goes through the engine's check: a CT model on MR fails with its one-line reason."""
    from pathlib import Path

    from FewShot3DLib.session import apply_model
    from napari_fewshot3d.progress import Task
    from napari_fewshot3d.volume import Volume

    model = Path(__file__).resolve().parents[1] / "data" / "selfprompt_spleen_v2.fs3d"
    mr = Volume(np.random.default_rng(0).uniform(0, 800, (20, 20, 4)).astype(np.float32), np.eye(4))
    with pytest.raises(InputError, match="adapted on CT and this volume looks like MR"):
        apply_model(model, mr, "cpu", Task())
