"""Intensities as the backends (and the viewers' display windows) see them.

CT is shown through a fixed HU window (soft tissue by default, as a radiologist reads the
abdomen); MR has no absolute scale, so it is scaled between robust percentiles of the whole volume
(one scale for all slices, so that a structure keeps its brightness from slice to slice).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

#: Soft-tissue window (HU): level 40, width 400 — abdomen organs, vessels with contrast, fat vs. muscle.
CT_LEVEL = 40.0
CT_WIDTH = 400.0
#: Percentiles of the MR volume that map to 0 and 1.
MR_PERCENTILES = (0.5, 99.5)
MODALITIES = ("auto", "ct", "mr")

#: Voxels sampled at most to decide the modality and the MR percentiles (a strided subsample; plenty for quantiles).
_MAX_SAMPLE = 4_000_000


def _sample(array: np.ndarray) -> np.ndarray:
    flat = np.asarray(array).reshape(-1)
    step = max(1, flat.size // _MAX_SAMPLE)
    return flat[::step]


def looks_like_ct(array: np.ndarray) -> bool:
    """CT in Hounsfield units: integer values and air near -1000 (min ≤ -500). MR is never that negative."""
    sample = _sample(array)
    if sample.size == 0:
        return False
    integer_like = np.issubdtype(sample.dtype, np.integer) or bool(
        np.all(np.isfinite(sample)) and np.allclose(sample, np.round(sample), atol=1e-3)
    )
    return integer_like and float(np.nanmin(array)) <= -500.0


def modality_of(array: np.ndarray, window: dict | None = None) -> str:
    """ "ct" or "mr" as :func:`intensity_window` treats the volume with these ``window`` settings: a forced modality,
    a HU window (level/width: CT), else what :func:`looks_like_ct` says. A saved model records it."""
    window = window or {}
    if window.get("modality") in ("ct", "mr"):
        return str(window["modality"])
    if window.get("level") is not None or window.get("width") is not None:
        return "ct"
    return "ct" if looks_like_ct(np.asarray(array)) else "mr"


def modality_mismatch(adapted_on: str, array: np.ndarray, what_fails: str) -> str | None:
    """Why a model adapted on one modality (``"ct"``/``"mr"``) gives unreliable results on this volume, or None
    when the volume is of that modality (``what_fails``: what does not transfer, in the backend's terms)."""
    seen = modality_of(array)
    if seen == adapted_on:
        return None
    names = {"ct": "CT", "mr": "MR"}
    return f"the model was adapted on {names[adapted_on]} and this volume looks like {names[seen]}: {what_fails}"


def intensity_window(
    array: np.ndarray,
    modality: str = "auto",
    level: float | None = None,
    width: float | None = None,
    percentiles: tuple[float, float] = MR_PERCENTILES,
) -> np.ndarray:
    """Map a volume (or slice) to float32 in [0, 1]: a HU window for CT, robust percentiles for MR.

    ``modality`` "auto" detects CT with :func:`looks_like_ct`. ``level``/``width`` override the CT window
    (e.g. 60/160 for liver lesions); for MR the percentiles are taken over the voxels above the volume's
    minimum (MR background is often exactly 0 and would otherwise drag the low percentile to it).
    """
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}: choose one of {', '.join(MODALITIES)}")
    data = np.array(array, dtype=np.float32)  # our own copy: windowed in place (one volume of float32, no more)
    missing = np.isnan(data)
    if missing.any():  # NaN (outside the field of view in some exports) reads as the lowest value
        data[missing] = 0.0 if missing.all() else np.nanmin(data)
    del missing
    is_ct = modality == "ct" or (modality == "auto" and looks_like_ct(data))
    if is_ct or level is not None or width is not None:
        level = CT_LEVEL if level is None else float(level)
        width = CT_WIDTH if width is None else float(width)
        if width <= 0:
            raise InputError(f"window width must be positive, got {width}")
        lo, hi = level - width / 2, level + width / 2
    else:
        sample = _sample(data)
        foreground = sample[sample > sample.min()] if sample.size else sample
        if foreground.size < 0.01 * max(sample.size, 1):
            foreground = sample
        if foreground.size == 0:
            return np.zeros(data.shape, np.float32)
        lo, hi = (float(v) for v in np.percentile(foreground, percentiles))
    if hi <= lo:
        return np.zeros(data.shape, np.float32)
    data -= np.float32(lo)
    data /= np.float32(hi - lo)
    return np.clip(data, 0.0, 1.0, out=data)


def display_window(array: np.ndarray) -> tuple[float, float]:
    """Contrast limits for showing a volume as the backends see it: the soft-tissue HU window for CT, the MR
    percentiles otherwise."""
    if looks_like_ct(array):
        return CT_LEVEL - CT_WIDTH / 2, CT_LEVEL + CT_WIDTH / 2
    sample = _sample(array)
    sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
    lo, hi = (float(v) for v in np.percentile(sample, MR_PERCENTILES)) if sample.size else (0.0, 1.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)
