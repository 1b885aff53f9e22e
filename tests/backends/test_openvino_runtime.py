"""The optional OpenVINO runtime of the image encoder: chosen by $FEWSHOT3D_RUNTIME, converted once into the model
cache, refused clearly where it cannot run, and giving the masks PyTorch fp32 gives (the bench's encoder record)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.backends.selfprompt.sam import model as sam_model
from napari_fewshot3d.backends.selfprompt.sam import openvino_encoder
from napari_fewshot3d.backends.selfprompt.sam import precision as sam_precision
from napari_fewshot3d.backends.selfprompt.sam.openvino_encoder import (
    MODEL_CACHE_ENV,
    RUNTIME_ENV,
    resolve_runtime,
    runtime_from_env,
)
from napari_fewshot3d.backends.selfprompt.sam.precision import cpu_has_native_bf16
from napari_fewshot3d.errors import InputError

from ..conftest import ct_slab

SPLEEN = 1


def test_the_runtime_env_is_read_and_a_bad_value_or_a_missing_package_says_what_to_do(monkeypatch):
    for value, expected in (("", "auto"), ("torch", "torch"), (" OpenVINO ", "openvino")):
        monkeypatch.setenv(RUNTIME_ENV, value)
        assert runtime_from_env() == expected, value
    monkeypatch.delenv(RUNTIME_ENV)
    assert runtime_from_env() == "auto"
    monkeypatch.setenv(RUNTIME_ENV, "onnx")
    with pytest.raises(
        InputError, match="FEWSHOT3D_RUNTIME='onnx' is not a runtime: choose one of auto, torch, openvino"
    ):
        get_backend("selfprompt-sam").sam("cpu")  # before any weights are read
    monkeypatch.setenv(RUNTIME_ENV, "openvino")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(InputError, match="needs the openvino package: pip install openvino"):
        get_backend("selfprompt-sam").sam("cpu")


@pytest.mark.slow  # converts the encoder once (30-100 s on 2 cores), then encodes 5 slices with each runtime
def test_openvino_is_converted_once_and_gives_the_masks_of_torch_fp32(tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path / "models"))
    monkeypatch.setenv(RUNTIME_ENV, "openvino")
    monkeypatch.delenv("FEWSHOT3D_PRECISION", raising=False)
    image, reference = ct_slab(84, 108)
    backend = get_backend("selfprompt-sam", cache_dir=tmp_path / "embeddings")
    record = backend.encoder_check(image, reference.array == SPLEEN, 2, "cpu", slices=4)
    assert record["runtime"] == ("openvino-bf16" if cpu_has_native_bf16() else "openvino-fp32")
    assert record["reference"] == "torch-fp32"
    assert record["mask_dice_vs_reference"] >= 0.97, record  # measured here: see the README's encoder line
    (converted,) = (tmp_path / "models").glob("*/encoder.xml")
    assert converted.with_suffix(".bin").stat().st_size > 10_000_000  # fp32 weights, not compressed
    assert not list((tmp_path / "models").glob(".converting-*"))  # nothing half-written left behind

    def must_not_convert(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(openvino_encoder, "_convert", must_not_convert)
    again = get_backend("selfprompt-sam", cache_dir=tmp_path / "other")
    assert again.sam("cpu").runtime == "openvino"
    embedder = again.embedder(image, 2, "cpu")
    assert embedder.get([10])[10].shape == (256, 64, 64)  # compiled from the cached IR
    monkeypatch.setenv(RUNTIME_ENV, "torch")
    torch_key = get_backend("selfprompt-sam", cache_dir=tmp_path / "other").embedder(image, 2, "cpu").key
    assert torch_key != embedder.key  # one runtime's embeddings are never served as the other's


def test_auto_is_openvino_on_a_cpu_where_it_is_installed_and_torch_elsewhere(monkeypatch):
    pytest.importorskip("openvino", reason="the openvino extra is part of the test install")
    assert resolve_runtime("auto", "cpu") == "openvino"
    assert resolve_runtime("auto", "cuda") == "torch"
    assert resolve_runtime("torch", "cpu") == "torch"
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed: PyTorch, and no error
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    assert get_backend("selfprompt-sam").sam("cpu").runtime == "torch"


def test_auto_falls_back_to_torch_where_openvino_will_not_compile_and_a_forced_openvino_says_why(monkeypatch):
    pytest.importorskip("openvino", reason="the openvino extra is part of the test install")

    def broken(*args):
        raise RuntimeError("no space left on device")

    monkeypatch.setattr(sam_model, "OpenVinoEncoder", broken)
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    model = get_backend("selfprompt-sam").sam("cpu")
    assert model.runtime == "openvino"
    inputs = np.zeros((1, 3, model.image_size, model.image_size), np.float32)
    with pytest.warns(UserWarning, match="OpenVINO could not compile the encoder .no space left on device.; encoding"):
        assert tuple(model.encode(inputs).shape) == (1, *model.embedding_shape)
    assert model.runtime == "torch"  # and stays so: the next slices are not tried again
    monkeypatch.setenv(RUNTIME_ENV, "openvino")
    forced = get_backend("selfprompt-sam").sam("cpu")
    with pytest.raises(RuntimeError, match="no space left"):
        forced.encode(inputs)


def test_bf16_is_chosen_only_on_cpus_with_bf16_units_whatever_onednn_says(monkeypatch):
    avx512 = {"fpu", "avx2", "avx512f", "avx512_vnni"}
    for flags, native in ((avx512, False), (avx512 | {"avx512_bf16"}, True), (avx512 | {"amx_bf16"}, True)):
        monkeypatch.setattr(sam_precision, "linux_cpu_flags", lambda flags=flags: flags)
        assert cpu_has_native_bf16() is native, flags
        assert sam_precision.resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    assert sam_precision.resolve_precision("auto", torch.device("cuda")) == "fp16"
