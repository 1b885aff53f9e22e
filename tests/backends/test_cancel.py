"""Cancel in the middle of each engine job — embed, adapt, segment — with the real backends on small CT slabs.

What the README promises (napari's and Slicer's Cancel button): the job stops soon after the token is set, with
Cancelled rather than a result, and what it finished stays usable. Each test counts the work that is still done
after the cancel (slices encoded, training steps, network windows, ITK gaps), which a job that ignored the token
would keep doing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from napari_fewshot3d import engine
from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.errors import Cancelled
from napari_fewshot3d.progress import CancelToken
from napari_fewshot3d.support import SupportSet

from ..conftest import ct_slab

pytestmark = pytest.mark.slow  # encodes ~10 slices with LiteMedSAM, trains a tiny Swin-UNETR, loads ITK

SPLEEN, LIVER = 1, 5


class CancelWhen:
    """A progress callback that presses Cancel at the first report for which ``when(fraction, message)`` holds."""

    def __init__(self, when: Callable[[float, str], bool], count: Callable[[], int] = lambda: 0) -> None:
        self.token = CancelToken()
        self.when, self.count = when, count
        self.messages: list[str] = []
        self.work_at_cancel: int | None = None

    def __call__(self, fraction: float, message: str) -> None:
        self.messages.append(message)
        if self.work_at_cancel is None and self.when(fraction, message):
            self.work_at_cancel = self.count()
            self.token.cancel()

    def work_after_cancel(self) -> int:
        assert self.work_at_cancel is not None, f"never reached the middle: {self.messages}"
        return self.count() - self.work_at_cancel


@pytest.fixture(scope="module")
def spleen_slab():
    """6 axial slices through the spleen, painted on 2 protocol slices."""
    image, reference = ct_slab(88, 94)
    spleen = np.where(reference.array == SPLEEN, SPLEEN, 0).astype(np.uint8)
    support = SupportSet.from_labels(reference.with_array(paint_slices(spleen, [SPLEEN], 2, k=2)), 2)
    return image, support


# ----------------------------------------------------------------------------- selfprompt-sam


def test_cancelled_embedding_stops_after_the_slice_in_hand_and_keeps_what_it_encoded(spleen_slab, cold_backend):
    image, _ = spleen_slab
    clock = cold_backend.encoder_clock
    cancel = CancelWhen(lambda f, m: m.startswith("encoding slice 3/"), lambda: clock.slices)
    with pytest.raises(Cancelled):
        engine.embed(image, cold_backend, "cpu", cancel, cancel.token)
    assert clock.slices == 3, cancel.messages  # slices 1, 2, and 3 that was started when Cancel came
    assert cancel.work_after_cancel() == 1
    engine.embed(image, cold_backend, "cpu")
    assert clock.slices - 3 == image.shape[2] - 3  # the rest only: the cancelled job's slices stayed cached


def test_cancelled_adapt_stops_before_choosing_refinement(spleen_slab, monkeypatch):
    from napari_fewshot3d.backends.selfprompt import backend

    image, support = spleen_slab
    choices = []
    original = backend.held_out_choices
    monkeypatch.setattr(backend, "held_out_choices", lambda *a, **k: choices.append(1) or original(*a, **k))
    cancel = CancelWhen(lambda f, m: m == "fitting the head", lambda: len(choices))
    with pytest.raises(Cancelled):
        engine.adapt(image, support, "selfprompt-sam", "cpu", cancel, cancel.token)
    assert cancel.work_after_cancel() == 0 and cancel.messages[-1] == "fitting the head"


def test_cancelled_segmentation_stops_tracking_before_the_next_slices(spleen_slab, cold_backend):
    """Tracking goes out from the painted slices wave by wave, encoding the slices each wave reaches (only the
    painted ones are cached here): Cancel at the first wave's report stops before any of them is encoded."""
    image, support = spleen_slab
    model = engine.adapt(image, support, cold_backend, "cpu")
    clock = cold_backend.encoder_clock
    cancel = CancelWhen(lambda f, m: m.startswith("tracking class 1:") and "0 more" not in m, lambda: clock.slices)
    with pytest.raises(Cancelled):
        engine.segment(model, image, support, "cpu", cancel, cancel.token)
    assert cancel.work_after_cancel() == 0, cancel.messages


# ----------------------------------------------------------------------------- swin-unetr


@pytest.fixture(scope="module")
def liver_slab():
    """32 axial slices through the liver, its reference painted on 3 protocol slices."""
    image, reference = ct_slab(80, 112)
    liver = np.where(reference.array == LIVER, LIVER, 0).astype(np.uint8)
    return image, liver, SupportSet.from_labels(reference.with_array(paint_slices(liver, [LIVER], 2, k=3)), 2)


def test_cancelled_fine_tuning_stops_after_the_step_in_hand(liver_slab, monkeypatch):
    from napari_fewshot3d.backends.swin import training

    image, _, support = liver_slab
    batches = []
    original = training._batch
    monkeypatch.setattr(training, "_batch", lambda *a: batches.append(1) or original(*a))
    cancel = CancelWhen(lambda f, m: m.startswith("fine-tuning: step 2,"), lambda: len(batches))
    backend = get_backend("swin-unetr", max_steps=50, max_seconds=600)
    with pytest.raises(Cancelled):
        engine.adapt(image, support, backend, "cpu", cancel, cancel.token)
    assert len(batches) == 2 and cancel.work_after_cancel() == 0, cancel.messages


def test_cancelled_swin_segmentation_stops_between_windows(liver_slab):
    image, _, support = liver_slab
    model = engine.adapt(image, support, get_backend("swin-unetr", max_steps=1), "cpu")
    model.inference["roi"] = (32, 32, 32)  # several windows on this small slab, as a whole CT has on a GPU schedule
    windows = []
    hook = model.network.register_forward_hook(lambda *_: windows.append(1))
    try:
        cancel = CancelWhen(lambda f, m: m.startswith("segmenting: window 1 of"), lambda: len(windows))
        with pytest.raises(Cancelled):
            engine.segment(model, image, support, "cpu", cancel, cancel.token)
    finally:
        hook.remove()
    total = int(cancel.messages[-1].split(" of ")[1])
    assert total >= 2 and len(windows) == 1 and cancel.work_after_cancel() == 0, cancel.messages


# ----------------------------------------------------------------------------- interpolate


def test_cancelled_interpolation_stops_between_gaps(liver_slab, monkeypatch):
    """Adapting only reads the support (one report, at its end); the work is in segment, one ITK run per gap."""
    from napari_fewshot3d.backends import interpolate

    image, liver, _ = liver_slab
    support = SupportSet.from_labels(image.with_array(paint_slices(liver, [LIVER], 2, k=4)), 2)
    runs = []
    original = interpolate._interpolate_labels
    monkeypatch.setattr(interpolate, "_interpolate_labels", lambda *a: runs.append(1) or original(*a))
    gap = "interpolating between painted slices"
    cancel = CancelWhen(lambda f, m: m == gap and cancel.messages.count(gap) == 2, lambda: len(runs))
    with pytest.raises(Cancelled):
        engine.run(image, support, "interpolate", "cpu", cancel, cancel.token)
    assert len(runs) == 2 and cancel.work_after_cancel() == 1, cancel.messages  # the gap in hand; the third: never
