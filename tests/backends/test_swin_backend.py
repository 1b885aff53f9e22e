"""The swin-unetr backend on real data with a tiny CPU configuration (feature size 12, 64×64×32 patches):
fine-tuning learns, models save and reload, VolF pretraining makes weights the backend starts from, and the
CLI keeps its contract."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d import engine
from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.errors import Cancelled
from napari_fewshot3d.masks import dice
from napari_fewshot3d.progress import CancelToken, Task
from napari_fewshot3d.support import SupportSet
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import read_labels, write_image, write_labels

from ..conftest import assert_input_error, ct_slab, fewshot3d

LIVER = 5


@pytest.fixture(scope="module")
def liver_slab():
    """32 axial slices through the liver with its reference painted on 3 protocol slices."""
    image, reference = ct_slab(76, 108)
    painted = paint_slices(reference.array, [LIVER], 2, 3)
    support = SupportSet.from_labels(reference.with_array(painted), 2, {LIVER: "liver"})
    return image, reference.array == LIVER, support


def _unpainted_dice(labels: np.ndarray, truth: np.ndarray, support: SupportSet) -> float:
    unpainted = [s for s in range(truth.shape[2]) if s not in support.painted_slices()]
    return dice(labels[:, :, unpainted] == LIVER, truth[:, :, unpainted])


@pytest.mark.slow
def test_fine_tune_beats_its_untrained_start_and_reloads(liver_slab, tmp_path):
    image, truth, support = liver_slab
    messages: list[str] = []
    untrained = get_backend("swin-unetr", max_steps=1, max_seconds=1e-9)  # stops before its first step
    start = untrained.adapt(image, support, "cpu", Task(lambda f, m: messages.append(m)))
    assert start.record["training"]["steps"] == 0
    assert "no weights given: training Swin-UNETR from scratch" in messages
    before = _unpainted_dice(start.segment(image, "cpu", Task()), truth, support)

    model = engine.adapt(image, support, get_backend("swin-unetr", max_steps=6, max_seconds=600), "cpu")
    trained = model.segment(image, "cpu", Task())
    after = _unpainted_dice(trained, truth, support)
    assert model.record["training"]["steps"] == 6
    assert after > before + 0.2, (before, after)

    reloaded = engine.load_model(engine.save_model(model, tmp_path / "liver.fs3d"))
    assert reloaded.class_names == {LIVER: "liver"}
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ [30, 20, 0]
    corner = Volume(image.array[30:94, 20:84].copy(), affine, "corner")  # another, smaller volume: cheaper to run
    assert np.array_equal(reloaded.segment(corner, "cpu", Task()), model.segment(corner, "cpu", Task()))


@pytest.mark.slow  # builds the network and its first batch: ~4 s
def test_cancel_stops_fine_tuning(liver_slab):
    image, _, support = liver_slab
    token = CancelToken()

    def cancel_at_first_step(fraction: float, message: str) -> None:
        token.cancel()  # at the first message, before any training step

    with pytest.raises(Cancelled):
        get_backend("swin-unetr", max_steps=50).adapt(image, support, "cpu", Task(cancel_at_first_step, token))


@pytest.mark.slow
def test_volf_pretrain_cli_resumes_and_the_backend_starts_from_it(liver_slab, tmp_path):
    image, truth, support = liver_slab
    (tmp_path / "volumes").mkdir()
    write_image(image, tmp_path / "volumes" / "slab.nii.gz")
    write_labels(image.with_array(truth.astype(np.uint8)), tmp_path / "volumes" / "slab_labels.nii.gz")  # skipped
    checkpoint = tmp_path / "volf.pt"
    tiny = ["--feature-size", "12", "--patch", "64", "64", "32", "--batch", "1", "--device", "cpu"]
    first = fewshot3d("pretrain", "--volumes", tmp_path / "volumes", "--out", checkpoint, "--steps", "1", *tiny)
    assert first.returncode == 0, first.stderr
    assert "1 volume(s)" in first.stderr and checkpoint.is_file()
    again = fewshot3d("pretrain", "--volumes", tmp_path / "volumes", "--out", checkpoint, "--steps", "1", *tiny)
    assert_input_error(again, "--resume")
    resumed = fewshot3d(
        "pretrain", "--volumes", tmp_path / "volumes", "--out", checkpoint, "--steps", "2", "--resume", *tiny
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "step 2" in resumed.stderr

    backend = get_backend("swin-unetr", weights=str(checkpoint), max_steps=1)
    assert backend.checkpoint.kind == "volf" and backend.checkpoint.meta["step"] == 2
    messages: list[str] = []
    model = backend.adapt(image, support, "cpu", Task(lambda f, m: messages.append(m)))
    report = model.record["weights"]
    assert report["kind"] == "volf" and report["loaded"] > 150
    assert {name.split(".")[0] for name in report["missing"]} == {"out"}  # only the task's output layer is new
    assert any(m.startswith("weights volf.pt (VolF pretraining): loaded") for m in messages)


@pytest.mark.slow
def test_segment_cli_with_swin_unetr(liver_slab, tmp_path):
    image, _, support = liver_slab
    write_image(image, tmp_path / "slab.nii.gz")
    write_labels(support.labels, tmp_path / "painted.nii.gz")
    args = ["segment", tmp_path / "slab.nii.gz", "--support", tmp_path / "painted.nii.gz", "--device", "cpu"]
    done = fewshot3d(*args, "--out", tmp_path / "out.nii.gz", "--backend", "swin-unetr", "--max-steps", "1")
    assert done.returncode == 0, done.stderr
    assert "training Swin-UNETR from scratch" in done.stderr
    result = read_labels(tmp_path / "out.nii.gz")
    assert result.same_grid(image)
    painted = support.painted_slices()
    assert np.array_equal(result.array[:, :, painted], support.labels.array[:, :, painted])  # painting kept


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--backend", "swin-unetr", "--weights", "/nonexistent/model_swinvit.pt"], "no such weights file"),
        (["--backend", "interpolate", "--weights", "model_swinvit.pt"], "--weights is not an option of interpolate"),
        (["--backend", "swin-unetr", "--feature-size", "10"], "multiple of 12"),
    ],
)
def test_segment_cli_refuses_bad_backend_options(ct_paths, tmp_path, extra, fragment):
    out = tmp_path / "out.nii.gz"
    result = fewshot3d("segment", ct_paths["image"], "--support", ct_paths["labels"], "--out", out, *extra)
    assert_input_error(result, fragment)
    assert not out.exists()


@pytest.mark.slow
def test_pretrain_cli_refuses_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "ck.pt"
    cases = [
        (["--volumes", tmp_path / "missing", "--out", out], "no such folder of volumes"),
        (["--volumes", tmp_path / "empty", "--out", out], "no volume found"),
        (["--volumes", tmp_path / "empty", "--out", out, "--resume"], "nothing to resume"),
        (["--volumes", tmp_path / "empty", "--out", tmp_path / "no" / "ck.pt"], "does not exist"),
        (["--volumes", tmp_path / "empty", "--out", out, "--feature-size", "20"], "multiple of 12"),
    ]
    for args, fragment in cases:
        assert_input_error(fewshot3d("pretrain", *args), fragment)
        assert not out.exists()
