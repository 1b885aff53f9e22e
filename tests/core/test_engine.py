"""The engine verbs: progress, cancellation, painted slices kept, device choice, model files."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d import backends, engine
from napari_fewshot3d.backends import AdaptedModel, Backend, available_backends, get_backend, register_backend
from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.errors import Cancelled, InputError
from napari_fewshot3d.masks import dice
from napari_fewshot3d.progress import CancelToken, Task
from napari_fewshot3d.support import SupportSet


class IntensityRangeModel(AdaptedModel):
    """Labels voxels whose intensity falls in the range seen under each painted class."""

    backend_name = "intensity-range"

    def __init__(self, ranges: np.ndarray, class_names: dict[int, str]) -> None:
        self.ranges = ranges  # rows: value, low, high
        self.class_names = class_names

    def segment(self, volume, device, task):
        out = np.zeros(volume.shape, np.uint8)
        for n, (value, low, high) in enumerate(self.ranges):
            task.report(n / len(self.ranges), f"class {int(value)}")
            out[(volume.array >= low) & (volume.array <= high)] = int(value)
        return out

    def to_state(self):
        return {"note": "test"}, {"ranges": self.ranges}


class IntensityRangeBackend(Backend):
    """A minimal saveable backend: exercises the engine's plumbing without a neural network."""

    name = "intensity-range"
    can_save = True

    def adapt(self, volume, support, device, task):
        rows = []
        for cls in support.classes:
            inside = volume.array[support.labels.array == cls.value]
            rows.append([cls.value, *np.percentile(inside, [2, 98])])
            task.report(len(rows) / len(support.classes), cls.name)
        return IntensityRangeModel(np.array(rows), support.class_names)

    def from_state(self, meta, arrays):
        assert meta == {"note": "test"}
        return IntensityRangeModel(arrays["ranges"], {})


@pytest.fixture
def intensity_range(monkeypatch):
    """The test backend, registered for one test only: undone after it, so it never shows in later tests' lists."""
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    register_backend("intensity-range", f"{__name__}:IntensityRangeBackend")


@pytest.fixture
def blob_support(blob_volume, intensity_range):
    image, labels = blob_volume
    painted = paint_slices(labels.array, [1, 2], axis=2, k=3)
    return image, labels, SupportSet.from_labels(labels.with_array(painted), "axial", {1: "a", 2: "b"})


def test_run_reports_monotonic_progress_and_keeps_painted_slices(blob_support):
    image, labels, support = blob_support
    seen = []
    result, model = engine.run(image, support, "intensity-range", "cpu", lambda f, m: seen.append(f))
    fractions = [f for f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert result.same_grid(image)
    for cls in support.classes:
        for s in cls.slices:
            np.testing.assert_array_equal(
                result.array[:, :, s] == cls.value, support.labels.array[:, :, s] == cls.value
            )
    assert dice(result.array == 1, labels.array == 1) > 0.8


def test_cancel_stops_the_work(blob_support):
    image, _, support = blob_support
    token = CancelToken()

    def cancel_halfway(fraction, message):
        if fraction > 0.5:
            token.cancel()

    with pytest.raises(Cancelled):
        engine.run(image, support, "intensity-range", "cpu", cancel_halfway, token)


def test_task_sub_ranges_nest():
    seen = []
    task = Task(lambda f, m: seen.append(round(f, 3)))
    task.sub(0.5, 1.0).sub(0.5, 1.0).report(0.5)
    assert seen == [0.875]


def test_saved_model_applies_identically(tmp_path, blob_support):
    image, _, support = blob_support
    _, model = engine.run(image, support, "intensity-range", "cpu")
    path = engine.save_model(model, tmp_path / "model.fs3d")
    loaded = engine.load_model(path)
    assert loaded.class_names == {1: "a", 2: "b"}
    a = engine.segment(model, image, device="cpu").array
    b = engine.segment(loaded, image, device="cpu").array
    np.testing.assert_array_equal(a, b)


def test_bad_model_files_are_input_errors(tmp_path):
    (tmp_path / "junk.fs3d").write_bytes(b"PK junk")
    with pytest.raises(InputError, match="not a fewshot3d model"):
        engine.load_model(tmp_path / "junk.fs3d")
    with pytest.raises(InputError, match="no such model"):
        engine.load_model(tmp_path / "absent.fs3d")


@pytest.mark.slow  # the first ITK import: ~15 s
def test_interpolation_cannot_be_saved(blob_support):
    image, _, support = blob_support
    _, model = engine.run(image, support, "interpolate", "cpu")
    with pytest.raises(TypeError, match="cannot save"):
        model.to_state()


def test_only_the_shipped_backends_are_registered():
    assert available_backends() == ["hybrid", "interpolate", "pixel-classifier", "selfprompt-sam", "swin-unetr"]


def test_devices():
    assert engine.resolve_device("cpu") == "cpu"
    assert engine.resolve_device("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(InputError, match="unknown device"):
        engine.resolve_device("tpu")
    with pytest.raises(InputError, match="unknown backend"):
        get_backend("magic")


def test_support_must_be_on_the_image_grid(blob_support):
    image, _, support = blob_support
    other = image.with_array(image.array)
    other.affine = other.affine.copy()
    other.affine[0, 3] += 5
    with pytest.raises(InputError, match="not on the image's grid"):
        engine.adapt(other, support, "intensity-range", "cpu")


def test_slices_declared_empty_stay_empty(blob_support):
    image, labels, support = blob_support
    empty = [s for s in range(labels.shape[2]) if not labels.array[:, :, s].any()][:1] + [14]
    painted = support.labels.array.copy()
    painted[:, :, 14] = 0  # the user marked slice 14 "contains nothing" (wrongly, but it is their call)
    declared = SupportSet.from_labels(labels.with_array(painted), "axial", empty_slices=empty)
    result, _ = engine.run(image, declared, "intensity-range", "cpu")
    assert not result.array[:, :, 14].any()
    assert result.array[:, :, 15].any()  # the prediction itself did find the structure next door
