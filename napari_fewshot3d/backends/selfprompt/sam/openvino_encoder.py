"""The image encoder compiled by OpenVINO, for CPUs: an optional runtime, the default on a CPU where it is installed.

Measured on this project's 2-core CPUs (per 256x256 slice): with bf16 units, PyTorch fp32 (channels_last) 1.1-1.4 s,
PyTorch bf16 autocast 0.73 s, OpenVINO bf16 0.37 s with decoded masks Dice 0.997 against fp32; without them (AVX-512
only), PyTorch fp32 0.98 s, OpenVINO f32 0.46 s (ONNX Runtime int8 was slower and wrong, Dice 0.76). The bench
records the ratio on every run (``encoder`` in results.json). ``FEWSHOT3D_RUNTIME=torch|openvino`` forces one.

The encoder is converted from the PyTorch module once per model and kept on disk (fp32 weights, no compression) in
the model cache — never at import time, only when the runtime is first asked to encode; the IR is written to a
temporary folder and renamed into place, so two processes converting at once do not see half a file. The
precision (bf16 or f32) is an inference hint given when compiling, so one IR serves both.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ....errors import InputError
from ..cache import user_cache_root

RUNTIMES = ("auto", "torch", "openvino")
#: Chooses the encoder's runtime (README: `FEWSHOT3D_RUNTIME=auto|torch|openvino`); unset = auto.
RUNTIME_ENV = "FEWSHOT3D_RUNTIME"
#: Where converted models are kept ($FEWSHOT3D_MODEL_CACHE, else the user cache folder).
MODEL_CACHE_ENV = "FEWSHOT3D_MODEL_CACHE"
INSTALL = "pip install openvino"


def runtime_from_env() -> str:
    """The runtime $FEWSHOT3D_RUNTIME asks for ("auto" when unset or empty); another word is an input error."""
    value = os.environ.get(RUNTIME_ENV, "").strip().lower() or "auto"
    if value not in RUNTIMES:
        raise InputError(f"{RUNTIME_ENV}={value!r} is not a runtime: choose one of {', '.join(RUNTIMES)}")
    return value


def resolve_runtime(runtime: str, device: str) -> str:
    """ "auto" → OpenVINO on a CPU where the package is installed (it is the faster there), PyTorch elsewhere."""
    if runtime != "auto":
        return runtime
    return "openvino" if device == "cpu" and importlib.util.find_spec("openvino") is not None else "torch"


def model_cache_dir() -> Path:
    """Not the embeddings' folder: a converted model serves every image (and every test) on this machine."""
    if os.environ.get(MODEL_CACHE_ENV):
        return Path(os.environ[MODEL_CACHE_ENV])
    return user_cache_root() / "models"


def check_available() -> None:
    """Refuse the OpenVINO runtime up front, with the command that installs it, where the package is missing."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        raise InputError(f"{RUNTIME_ENV}=openvino needs the openvino package: {INSTALL}") from None


class OpenVinoEncoder:
    """``encoder`` (a PyTorch module, (B, 3, S, S) → (B, 256, 64, 64)) compiled for the CPU at ``precision``."""

    def __init__(self, encoder: nn.Module, image_size: int, model_id: str, precision: str) -> None:
        check_available()
        import openvino as ov

        path = model_cache_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', model_id)}-{image_size}" / "encoder.xml"
        if not path.is_file():
            _convert(encoder, image_size, path)
        hint = "bf16" if precision == "bf16" else "f32"
        self.compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint})

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().cpu().numpy(), np.float32)
        return torch.from_numpy(np.array(self.compiled(array)[0], np.float32))


def _convert(encoder: nn.Module, image_size: int, path: Path) -> None:
    import openvino as ov

    path.parent.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=path.parent.parent))
    try:
        # The tracer warns that TinyViT's "pad if the size does not divide" branch becomes a constant: it does, for
        # the one input size the model is always given (image_size), so the warning says nothing to a user.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            model = ov.convert_model(encoder.float().eval(), example_input=torch.zeros(1, 3, image_size, image_size))
        ov.save_model(model, str(staging / path.name), compress_to_fp16=False)
        try:
            staging.rename(path.parent)
        except OSError:  # another process put it there first: theirs is the same model
            if not path.is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
