"""The encoder's numeric precision: what "auto" means on this machine, and the environment override.

bf16 is only worth it where the CPU has bf16 units; elsewhere it is emulated and slower than fp32, so "auto"
reads the CPU's flags rather than trusting oneDNN's answer.
"""

from __future__ import annotations

import os

import torch

from ....errors import InputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Forces the encoder's precision for the backends (README: `FEWSHOT3D_PRECISION=fp32|bf16|fp16`); unset = auto.
PRECISION_ENV = "FEWSHOT3D_PRECISION"


def cpu_has_native_bf16() -> bool:
    """bf16 pays on CPUs with native bf16 units (AVX512-BF16/AMX): measured 0.95 vs 1.57 s per slice on
    2 cores, decoded masks Dice 0.995 against fp32. Elsewhere it is emulated and slower than fp32 (measured on a
    2-core AVX-512 CPU without them: PyTorch bf16 1.93 s vs fp32 0.98 s, OpenVINO bf16 7.7 s vs f32 0.46 s) — and
    oneDNN's own check says yes on any AVX-512 CPU, so on Linux the CPU's flags decide."""
    flags = linux_cpu_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def linux_cpu_flags() -> set[str] | None:
    """The first CPU's feature flags from /proc/cpuinfo (None where there is no such file)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        return None
    return None


def precision_from_env() -> str:
    """The precision $FEWSHOT3D_PRECISION asks for ("auto" when unset or empty); another word is an input error."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise InputError(f"{PRECISION_ENV}={value!r} is not a precision: choose one of {', '.join(PRECISIONS)}")
    return value


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision the encoder runs at: "auto" is fp16 on CUDA, bf16 on CPUs with bf16 units, else fp32."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise InputError("fp16 precision needs a CUDA device; use bf16 or fp32 on CPU")
    return precision
