"""The encoder's runtime against plain fp32 on the same CT slices: what the bench records as "encoder"."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.backends.selfprompt.sam.openvino_encoder import resolve_runtime, runtime_from_env
from napari_fewshot3d.backends.selfprompt.sam.precision import cpu_has_native_bf16
from napari_fewshot3d.bench.report import encoder_line

from ..conftest import ct_slab

SPLEEN = 1


@pytest.mark.slow  # encodes 4 + 1 slices twice
def test_the_runtime_is_timed_against_fp32_on_the_same_slices_and_gives_the_same_masks(tmp_path, monkeypatch):
    monkeypatch.delenv("FEWSHOT3D_PRECISION", raising=False)
    image, reference = ct_slab(84, 108)
    spleen = reference.array == SPLEEN
    backend = get_backend("hybrid", cache_dir=tmp_path)  # the default: its SAM learner has the encoder
    record = backend.encoder_check(image, spleen, 2, "cpu", slices=4)
    present = np.flatnonzero(spleen.any(axis=(0, 1)))
    assert len(record["slices"]) == 4 and set(record["slices"]) <= set(present.tolist())
    assert record["reference"] == "torch-fp32" and record["device"] == "cpu"
    runtime = resolve_runtime(runtime_from_env(), "cpu")
    assert record["runtime"] == f"{runtime}-{'bf16' if cpu_has_native_bf16() else 'fp32'}"
    assert record["seconds_per_slice"] > 0 and record["reference_seconds_per_slice"] > 0
    assert record["speedup"] == pytest.approx(record["reference_seconds_per_slice"] / record["seconds_per_slice"])
    # measured on this project's 2-core CPUs: bf16 Dice 0.99+, OpenVINO f32 0.99+; PyTorch fp32 against itself is exact
    floor = 1.0 if record["runtime"] == "torch-fp32" else 0.97
    assert record["mask_dice_vs_reference"] >= floor, record
    assert get_backend("pixel-classifier").encoder_check(image, spleen, 2, "cpu") is None  # no encoder
    line = encoder_line({"backend": "hybrid", "case": "slab"} | record)
    assert record["runtime"] in line and "against torch-fp32" in line and f"{record['speedup']:.2f}x" in line
