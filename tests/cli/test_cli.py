"""`fewshot3d` as a user runs it: a subprocess, its exit code, its stderr, the files it leaves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_fewshot3d.backends.interpolate import interpolate_between_slices
from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.masks import dice
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import read_image, read_labels, write_image, write_labels

from ..conftest import assert_input_error, case_slab, ct_slab, data_path, fewshot3d

LIVER = 5
SPLEEN = 1

#: Model files of each format version, committed (see tests/data/README.md): later versions must keep reading them.
COMMITTED_MODELS = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def ct_liver_support(tmp_path_factory) -> dict[str, Path]:
    """ct_abdomen with the reference liver painted on 3 protocol slices, written as a user's file."""
    folder = data_path("ct_abdomen")
    reference = read_labels(folder / "reference_labels.nii.gz")
    painted = paint_slices(np.where(reference.array == LIVER, LIVER, 0).astype(np.uint8), [LIVER], 2, k=3)
    work = tmp_path_factory.mktemp("ct")
    support = write_labels(reference.with_array(painted), work / "painted.nii.gz")
    one_slice = painted.copy()
    painted_slices = np.flatnonzero(painted.any(axis=(0, 1)))
    one_slice[:, :, painted_slices[1:]] = 0
    return {
        "image": folder / "image.nii.gz",
        "support": support,
        "one_slice": write_labels(reference.with_array(one_slice), work / "one_slice.nii.gz"),
        "empty": write_labels(reference.with_array(np.zeros_like(painted)), work / "empty.nii.gz"),
        "work": work,
    }


@pytest.mark.slow
@pytest.mark.parametrize("ext", [".nii.gz", ".seg.nrrd"])
def test_segment_ct_liver_gives_the_fill_between_slices_result(ct_liver_support, tmp_path, ext):
    out = tmp_path / f"liver{ext}"
    result = fewshot3d(
        "segment",
        ct_liver_support["image"],
        "--support",
        ct_liver_support["support"],
        "--out",
        out,
        "--backend",
        "interpolate",
    )
    assert result.returncode == 0, result.stderr
    image = read_image(ct_liver_support["image"])
    mask = read_labels(out)
    assert mask.same_grid(image)
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-4)
    painted = read_labels(ct_liver_support["support"]).array
    expected = interpolate_between_slices(painted, axis=2)
    np.testing.assert_array_equal(mask.array, expected)
    assert set(np.unique(mask.array)) == {0, LIVER}
    assert "wrote" in result.stderr


@pytest.mark.slow
def test_labels_stored_in_another_orientation_are_reoriented(tmp_path):
    """A NIfTI in LAS for a DICOM series read as LPS holds the same voxels: it is used, not refused."""
    series = data_path("ct_dicom_series")
    image = read_image(series)
    labels = np.zeros(image.shape, np.uint8)
    labels[200:300, 180:320, 4] = 1
    labels[220:280, 200:300, 15] = 1
    # Flip i (L -> R): the file stores the same voxels in LAS order.
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, image.shape[0] - 1
    las = Volume(np.ascontiguousarray(labels[::-1]), image.affine @ flip)
    write_labels(las, tmp_path / "painted_las.nii.gz")
    out = tmp_path / "mask.nrrd"
    result = fewshot3d(
        "segment",
        series,
        "--support",
        tmp_path / "painted_las.nii.gz",
        "--out",
        out,
        "--backend",
        "interpolate",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    mask = read_labels(out)
    assert mask.same_grid(image)
    np.testing.assert_array_equal(mask.array, interpolate_between_slices(labels, 2))


@pytest.mark.slow  # 19 CLI runs: ~50 s on 2 busy cores
def test_bad_inputs_exit_2_with_one_line_and_write_nothing(ct_liver_support, tmp_path):
    image, support = ct_liver_support["image"], ct_liver_support["support"]
    out = tmp_path / "out.nii.gz"
    (tmp_path / "text.nii.gz").write_text("hello")
    other_grid = read_labels(support)
    other_grid.affine = other_grid.affine @ np.diag([1.0, 1.0, 2.0, 1.0])
    write_labels(other_grid, tmp_path / "other_grid.nii.gz")
    cases = [
        (["segment", tmp_path / "absent.nii.gz", "--support", support], "no such file"),
        (["segment", image, "--support", tmp_path / "absent.nii.gz"], "no such file"),
        (["segment", tmp_path / "text.nii.gz", "--support", support], "not a readable NIfTI"),
        (["segment", image, "--support", tmp_path / "other_grid.nii.gz"], "grid or geometry differs"),
        (["segment", image, "--support", ct_liver_support["empty"]], "no painted slice"),
        (
            ["segment", image, "--support", ct_liver_support["one_slice"], "--backend", "interpolate"],
            "painted on 1 slice",
        ),
        (["segment", image, "--support", support, "--backend", "magic"], "unknown backend"),
        (["segment", image, "--support", support, "--device", "tpu"], "unknown device"),
        (["segment", image, "--support", support, "--axis", "oblique"], "unknown axis"),
        (
            ["segment", image, "--support", support, "--backend", "interpolate", "--save-model", tmp_path / "m.fs3d"],
            "cannot save a model",
        ),
        (["segment", image, "--support", support, "--window", "60;160"], "is not LEVEL,WIDTH"),
        (["segment", image, "--support", support, "--window", "60,-5"], "window width must be positive"),
        (["segment", image, "--support", support, "--sam-checkpoint", tmp_path / "sam.pth"], "sam.pth"),
        (
            ["segment", image, "--support", support, "--backend", "interpolate", "--window", "60,160"],
            "--window/--modality is not an option of interpolate (backends taking it: hybrid, selfprompt-sam)",
        ),
    ]
    for args, fragment in cases:
        assert_input_error(fewshot3d(*args, "--out", out), fragment)
    bad_precision = fewshot3d("segment", image, "--support", support, "--out", out, env={"FEWSHOT3D_PRECISION": "int8"})
    assert_input_error(bad_precision, "FEWSHOT3D_PRECISION='int8' is not a precision: choose one of auto, fp32")
    assert not out.exists()
    assert_input_error(
        fewshot3d("segment", image, "--support", support, "--out", tmp_path / "no" / "x.nii.gz"), "does not exist"
    )
    assert_input_error(
        fewshot3d("segment", image, "--support", support, "--out", tmp_path / "x.png"), "unknown output format"
    )
    assert_input_error(fewshot3d("segment", image, "--support", support, "--out", tmp_path), "unknown output format")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_grid.nii.gz", "text.nii.gz"]


@pytest.mark.no_cuda  # the unavailable-device path needs a machine without CUDA
def test_unavailable_device_exits_2():
    result = fewshot3d("segment", "img.nii.gz", "--support", "l.nii.gz", "--out", "o.nii.gz", "--device", "cuda")
    assert_input_error(result, "device cuda is not available")


def test_usage_mistakes_and_bad_models_exit_2(tmp_path):
    assert_input_error(fewshot3d("segment", "image.nii.gz"), "required")
    assert_input_error(fewshot3d("frobnicate"), "invalid choice")
    (tmp_path / "model.fs3d").write_text("junk")
    write_image(Volume(np.zeros((4, 4, 4), np.int16), np.eye(4)), tmp_path / "img.nii.gz")
    assert_input_error(
        fewshot3d("apply", tmp_path / "model.fs3d", tmp_path / "img.nii.gz", "--out", tmp_path / "o.nii.gz"),
        "not a fewshot3d model",
    )
    assert not (tmp_path / "o.nii.gz").exists()


@pytest.mark.slow
def test_demo_runs_offline_and_prints_dice(tmp_path):
    result = fewshot3d("demo", "--out", tmp_path / "demo", "--quiet")
    assert result.returncode == 0, result.stderr
    scores = dict(part.split(": Dice ") for part in result.stdout.split(" (")[0].split("; "))
    assert set(scores) == {"grey_matter", "white_matter"}
    # Floors a few hundredths under the measured Dice (grey 0.872, white 0.790; selfprompt-sam, k=3, fp32 CPU)
    floors = {"grey_matter": 0.84, "white_matter": 0.76}
    assert all(floors[name] <= float(v) <= 1.0 for name, v in scores.items()), scores
    image = read_image(tmp_path / "demo" / "image.nii.gz")
    prediction = read_labels(tmp_path / "demo" / "prediction.seg.nrrd")
    assert prediction.same_grid(image)
    assert prediction.metadata["class_names"] == {1: "grey_matter", 2: "white_matter"}


@pytest.mark.slow
def test_selfprompt_segment_saves_a_model_that_apply_uses(tmp_path):
    """The default backend through the CLI on a 24-slice CT slab: segment --save-model, then apply."""
    slab, reference = ct_slab(84, 108)
    spleen = np.where(reference.array == 1, 1, 0).astype(np.uint8)
    write_image(slab, tmp_path / "slab.nrrd")
    write_labels(slab.with_array(paint_slices(spleen, [1], 2, k=2)), tmp_path / "painted.nii.gz")
    env = {"FEWSHOT3D_CACHE_DIR": str(tmp_path / "cache")}
    done = fewshot3d(
        "segment",
        tmp_path / "slab.nrrd",
        "--support",
        tmp_path / "painted.nii.gz",
        "--out",
        tmp_path / "spleen.seg.nrrd",
        "--save-model",
        tmp_path / "spleen.fs3d",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    applied = fewshot3d(
        "apply", tmp_path / "spleen.fs3d", tmp_path / "slab.nrrd", "--out", tmp_path / "applied.nii.gz", env=env
    )
    assert applied.returncode == 0, applied.stderr
    # Floors a few hundredths under the measured Dice (segment 0.951; apply, without the painting, 0.909)
    for name, floor in (("spleen.seg.nrrd", 0.92), ("applied.nii.gz", 0.88)):
        mask = read_labels(tmp_path / name)
        assert mask.same_grid(slab)
        assert dice(mask.array == 1, spleen == 1) >= floor, name


def test_a_model_file_of_the_current_format_is_committed_and_reads_back():
    from napari_fewshot3d.engine import MODEL_FORMAT_VERSION, load_model

    assert (COMMITTED_MODELS / f"selfprompt_spleen_v{MODEL_FORMAT_VERSION}.fs3d").is_file()
    for version in range(1, MODEL_FORMAT_VERSION + 1):
        model = load_model(COMMITTED_MODELS / f"selfprompt_spleen_v{version}.fs3d")
        assert model.backend_name == "selfprompt-sam" and model.class_names == {SPLEEN: "spleen"}
        assert model.axis == 2 and model.refine == {SPLEEN: True} and model.fusion == {SPLEEN: "none"}
        assert model.checkpoint is None and list(model.head.values) == [SPLEEN]
    # Version 1 recorded nothing for other scans; version 2 the modality, mm per model pixel and the painted spleen.
    old = load_model(COMMITTED_MODELS / "selfprompt_spleen_v1.fs3d").transfer
    assert (old.pixel_mm, old.modality, old.profiles) == (0.0, None, {})
    new = load_model(COMMITTED_MODELS / "selfprompt_spleen_v2.fs3d").transfer
    assert new.modality == "ct" and new.pixel_mm == pytest.approx(366 / 256, rel=0.01)
    assert 1000 < new.profiles[SPLEEN].area_mm2 < 5000 and 0.4 < new.profiles[SPLEEN].mean < 0.6  # ~30 HU


@pytest.mark.slow  # encodes 4 MR slices
def test_a_ct_model_on_mr_is_refused_and_forced_only_with_a_warning(tmp_path):
    model, mr = COMMITTED_MODELS / "selfprompt_spleen_v2.fs3d", data_path("mr_abdomen", "image.nii.gz")
    out = tmp_path / "spleen.nii.gz"
    assert_input_error(fewshot3d("apply", model, mr, "--out", out), "adapted on CT and this volume looks like MR")
    assert not out.exists()
    slab = write_image(case_slab("mr_abdomen", 8, 12)[0], tmp_path / "mr_slab.nii.gz")
    forced = fewshot3d("apply", model, tmp_path / "mr_slab.nii.gz", "--out", out, "--force", "--quiet")
    assert forced.returncode == 0, forced.stderr
    warnings = [line for line in forced.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings[0].startswith("warning: forced: the model was adapted on CT") and "unreliable" in warnings[0]
    assert read_labels(out).shape == read_image(slab).shape


@pytest.mark.slow  # encodes 4 CT slices
def test_a_structure_not_on_the_scan_is_a_warning_and_an_empty_mask(tmp_path):
    """The spleen model on pelvic slices (no spleen): said on stderr, the mask empty, not another organ."""
    slab, reference = ct_slab(0, 8)
    assert not (reference.array == SPLEEN).any()
    write_image(slab, tmp_path / "pelvis.nii.gz")
    out = tmp_path / "spleen.nii.gz"
    done = fewshot3d("apply", COMMITTED_MODELS / "selfprompt_spleen_v2.fs3d", tmp_path / "pelvis.nii.gz", "--out", out)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: spleen (label 1) not found"), done.stderr
    assert not read_labels(out).array.any()


@pytest.mark.slow
def test_apply_with_the_committed_model_finds_the_spleen(tmp_path):
    """Version 1 file, applied as a user does to CT slices next to the ones it was adapted on (measured Dice 0.939)."""
    slab, reference = ct_slab(95, 101)
    write_image(slab, tmp_path / "slab.nii.gz")
    out = tmp_path / "spleen.seg.nrrd"
    done = fewshot3d("apply", COMMITTED_MODELS / "selfprompt_spleen_v1.fs3d", tmp_path / "slab.nii.gz", "--out", out)
    assert done.returncode == 0, done.stderr
    mask = read_labels(out)
    assert mask.same_grid(slab) and mask.metadata["class_names"] == {SPLEEN: "spleen"}
    assert dice(mask.array == SPLEEN, reference.array == SPLEEN) >= 0.91


@pytest.mark.slow  # 5 CLI runs
def test_apply_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path):
    model = COMMITTED_MODELS / "selfprompt_spleen_v1.fs3d"
    image = write_image(Volume(np.zeros((8, 8, 4), np.int16), np.eye(4)), tmp_path / "image.nii.gz")
    (tmp_path / "text.nii.gz").write_text("hello")
    out = tmp_path / "out.nii.gz"
    cases = [
        ([model, tmp_path / "absent.nii.gz", "--out", out], "no such file"),
        ([model, tmp_path / "text.nii.gz", "--out", out], "not a readable NIfTI"),
        ([tmp_path / "absent.fs3d", image, "--out", out], "no such model file"),
        ([model, image, "--out", tmp_path / "no" / "out.nii.gz"], "output folder"),
        # A folder nobody can create files in, root included (the tests may run as root, for whom chmod is no bar).
        ([model, image, "--out", "/proc/out.nii.gz"], "output is not writable"),
    ]
    for args, fragment in cases:
        assert_input_error(fewshot3d("apply", *args), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.nii.gz", "text.nii.gz"]


@pytest.mark.slow
def test_segment_from_scribbles_with_a_background_label_or_a_class_named_background(ct_liver_support, tmp_path):
    """Strokes inside the liver and arcs around it on 3 slices: the CLI completes them and segments the liver."""
    from napari_fewshot3d.bench.strokes import scribble_support
    from napari_fewshot3d.support import SupportSet

    painted = read_labels(ct_liver_support["support"])
    strokes = scribble_support(SupportSet.from_labels(painted, 2)).labels  # background label LIVER + 1
    background = LIVER + 1
    by_value = write_labels(strokes, tmp_path / "strokes.nii.gz")
    by_name = write_labels(strokes, tmp_path / "strokes.seg.nrrd", {LIVER: "liver", background: "Background"})
    reference = read_labels(data_path("ct_abdomen") / "reference_labels.nii.gz").array == LIVER
    full = interpolate_between_slices(painted.array, axis=2) == LIVER
    for support, extra in ((by_value, ["--background-label", str(background)]), (by_name, [])):
        out = tmp_path / f"liver_{len(extra)}.nii.gz"
        args = ["--support", support, "--out", out, "--backend", "interpolate", *extra]
        result = fewshot3d("segment", ct_liver_support["image"], *args)
        assert result.returncode == 0, result.stderr
        assert f"3 scribbled (background label {background})" in result.stderr
        mask = read_labels(out).array
        assert set(np.unique(mask)) == {0, LIVER}  # the background label is never written as a class
        assert np.all(mask[strokes.array == LIVER] == LIVER) and not np.any(mask[strokes.array == background])
        assert dice(mask == LIVER, reference) > dice(full, reference) - 0.08
    # 0 is "unpainted", never the background
    result = fewshot3d(
        "segment",
        ct_liver_support["image"],
        "--support",
        by_value,
        "--out",
        tmp_path / "x.nii.gz",
        "--backend",
        "interpolate",
        "--background-label",
        "0",
    )
    assert_input_error(result, "background label must be a positive label value")
