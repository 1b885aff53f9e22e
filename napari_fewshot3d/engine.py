"""The three verbs every front end calls: embed, adapt, segment — plus device choice and model files.

Front ends (napari, Slicer, CLI) convert their data to a :class:`Volume` and a
:class:`SupportSet`, call these, and show the result. No segmentation logic lives anywhere else.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .atomic_file import write_atomically
from .backends import DEFAULT_BACKEND, AdaptedModel, Backend, get_backend
from .backends.base import Focus
from .errors import InputError
from .progress import CancelToken, ProgressCallback, Task
from .support import SupportSet
from .volume import Volume

DEVICES = ("auto", "cpu", "cuda", "mps")
MODEL_FORMAT = "fewshot3d-model"
#: 2: a selfprompt-sam model also records the mm per model pixel, the modality and a profile per class (what
#: applying it to other scans needs); files of version 1 still load and apply as before, without those checks.
MODEL_FORMAT_VERSION = 2
#: Where a segmented volume's metadata lists what the user must be told (a class not found, a forced apply).
WARNINGS = "warnings"


def resolve_device(device: str = "auto") -> str:
    """'auto' picks cuda, then mps, then cpu; asking for one that is not there is an input error."""
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if device == "auto":
            return "cpu"
        raise InputError(f"device {device} needs PyTorch, which is not installed") from None
    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        return "cuda" if has_cuda else "mps" if has_mps else "cpu"
    if (device == "cuda" and not has_cuda) or (device == "mps" and not has_mps):
        raise InputError(f"device {device} is not available on this machine")
    return device


def _backend(backend: str | Backend) -> Backend:
    return backend if isinstance(backend, Backend) else get_backend(backend)


def embed(
    volume: Volume,
    backend: str | Backend = DEFAULT_BACKEND,
    device: str = "auto",
    progress: ProgressCallback | Task | None = None,
    cancel: CancelToken | None = None,
    axis: str | int = "axial",
    focus: Focus | None = None,
) -> None:
    """Precompute (and cache) what the backend needs from the image alone, for every slice along ``axis``.

    Optional: adapt and segment compute what they miss themselves, and only for the slices they
    need. Front ends run this in the background as soon as an image is chosen, so that painting
    time is not wasted; ``focus()`` gives the slice in view (array index along ``axis``, or None), done first.
    """
    task, array_axis = Task.of(progress, cancel), volume.slicing_axis(axis)
    _backend(backend).embed(volume, resolve_device(device), task, array_axis, focus)


def adapt(
    volume: Volume,
    support: SupportSet,
    backend: str | Backend = DEFAULT_BACKEND,
    device: str = "auto",
    progress: ProgressCallback | Task | None = None,
    cancel: CancelToken | None = None,
) -> AdaptedModel:
    """Adapt a backend to the painted slices of ``support``; returns a model that can segment."""
    if not volume.same_grid(support.labels):
        raise InputError("support labels are not on the image's grid")
    chosen = _backend(backend)
    check_support(support, chosen)
    task = Task.of(progress, cancel)
    if support.partial_slices:  # scribbles: every backend learns from complete slices
        support, task = support.completed(volume, task.sub(0.0, 0.05)), task.sub(0.05, 1.0)
    return chosen.adapt(volume, support, resolve_device(device), task)


def check_support(support: SupportSet, backend: str | Backend) -> None:
    """Refuse a support set the backend cannot adapt to (too few painted slices of a class), before any work."""
    chosen = _backend(backend)
    support.require_slices_per_class(chosen.min_slices_per_class, chosen.name)


def segment(
    model: AdaptedModel,
    volume: Volume,
    support: SupportSet | None = None,
    device: str = "auto",
    progress: ProgressCallback | Task | None = None,
    cancel: CancelToken | None = None,
) -> Volume:
    """Label ``volume`` with an adapted model; painted slices of ``support`` keep exactly what was painted.

    The result's ``metadata["warnings"]`` lists one line per class the model could not find with confidence (its
    mask is then empty): every front end shows them."""
    task = Task.of(progress, cancel)
    labels, notes = model.segment_with_notes(volume, resolve_device(device), task)
    labels = np.asarray(labels)
    if support is not None:
        labels = keep_painted(labels, support)
    task.report(1.0, "done")
    result = volume.with_array(labels.astype(_label_dtype(model, support), copy=False), name=f"{volume.name}_labels")
    result.metadata[WARNINGS] = list(notes)
    return result


def check_applicable(model: AdaptedModel, volume: Volume, force: bool = False, how: str = "force=True") -> str | None:
    """Refuse to apply a saved model where it cannot work (a CT model on MR and back) with an input error, before
    any work (``how``: what forces it in the caller's terms, e.g. ``--force``); with ``force``, return the warning
    that the result is unreliable instead."""
    problem = model.check_volume(volume)
    if problem is None:
        return None
    if not force:
        raise InputError(f"{problem}; refused ({how} applies it anyway, with an unreliable result)")
    return f"forced: {problem}; the result is unreliable"


def apply_model(
    model: AdaptedModel,
    volume: Volume,
    device: str = "auto",
    progress: ProgressCallback | Task | None = None,
    cancel: CancelToken | None = None,
    force: bool = False,
) -> Volume:
    """A saved model on a scan it was not adapted on (``fewshot3d apply``): checked, then segmented; warnings (a
    forced modality, classes not found) in the result's ``metadata["warnings"]``."""
    forced = check_applicable(model, volume, force)
    result = segment(model, volume, None, device, progress, cancel)
    if forced:
        result.metadata[WARNINGS].insert(0, forced)
    return result


def keep_painted(labels: np.ndarray, support: SupportSet) -> np.ndarray:
    """On each class's painted slices, the user's painting wins over any prediction (both ways). On a partial
    (scribbled) slice only the strokes are known: the prediction keeps the rest, never covers a background stroke
    and never leaves a class's stroke."""
    labels = labels.copy()
    painted = support.labels.array
    partial = set(support.partial_slices)
    for cls in support.classes:
        for index in support.negative_slices(cls.value):
            predicted = support.slice_of(labels, index)  # a view: edits land in ``labels``
            user = support.slice_of(painted, index)
            known_not = (user != cls.value) & (user != 0) if index in partial else user != cls.value
            predicted[(predicted == cls.value) & known_not] = 0
            predicted[user == cls.value] = cls.value
    for index in partial:
        support.slice_of(labels, index)[support.slice_of(painted, index) == support.background] = 0
    return labels


def _label_dtype(model: AdaptedModel, support: SupportSet | None) -> np.dtype:
    values = list(model.class_names) + (support.values if support else [])
    return np.dtype(np.uint8 if max(values, default=0) <= 255 else np.uint16)


def run(
    volume: Volume,
    support: SupportSet,
    backend: str | Backend = DEFAULT_BACKEND,
    device: str = "auto",
    progress: ProgressCallback | Task | None = None,
    cancel: CancelToken | None = None,
) -> tuple[Volume, AdaptedModel]:
    """Adapt then segment the same volume: what "Adapt and segment" does."""
    task = Task.of(progress, cancel)
    model = adapt(volume, support, backend, device, task.sub(0.0, 0.6))
    return segment(model, volume, support, device, task.sub(0.6, 1.0)), model


# ----------------------------------------------------------------------------- model files


def can_save(what: AdaptedModel | Backend | None) -> bool:
    """Whether ``what`` (an adapted model, or the backend that would adapt it) learns something that can be saved
    and applied to other volumes."""
    if what is None:
        return False
    return what.can_save if isinstance(what, Backend) else get_backend(what.backend_name).can_save


def check_can_save(what: AdaptedModel | Backend | None) -> None:
    """The one place that says why a model cannot be saved (front ends call it before asking for a file name)."""
    if what is None:
        raise InputError("no adapted model yet: run 'Adapt and segment' first")
    if not can_save(what):
        name = what.name if isinstance(what, Backend) else what.backend_name
        raise InputError(f"backend {name} cannot save a model: it learns nothing that could be applied elsewhere")


def save_model(model: AdaptedModel, path: str | os.PathLike) -> Path:
    """Write an adapted model as one small file (zip of JSON settings + .npy arrays; no pickle)."""
    check_can_save(model)
    meta, arrays = model.to_state()
    header = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "backend": model.backend_name,
        "class_names": {str(k): v for k, v in model.class_names.items()},
        "settings": meta,
    }

    def write(partial: Path) -> None:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("model.json", json.dumps(header, indent=1))
            for name, array in arrays.items():
                with archive.open(f"arrays/{name}.npy", "w") as handle:
                    np.save(handle, np.asarray(array), allow_pickle=False)

    return write_atomically(path, write, "model")


def load_model(path: str | os.PathLike | bytes, backend_for: Callable[[str], Backend] = get_backend) -> AdaptedModel:
    """Read a model file written by :func:`save_model` and rebuild it with its backend.

    ``path`` may also be the file's bytes (a cohort sends them to its workers once, not a path to re-read).
    ``backend_for`` gives the backend of the model's kind by name: a front end passes its own lookup, so that what
    its backend has loaded and cached serves the model too (default: a new backend)."""
    source: Any
    if isinstance(path, bytes):
        source, path = io.BytesIO(path), Path("model bytes")
    else:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such model file")
        source = path
    try:
        with zipfile.ZipFile(source) as archive:
            header = json.loads(archive.read("model.json"))
            arrays = {
                Path(name).stem: np.load(archive.open(name), allow_pickle=False)
                for name in archive.namelist()
                if name.startswith("arrays/") and name.endswith(".npy")
            }
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise InputError(f"{path}: not a fewshot3d model file") from None
    if header.get("format") != MODEL_FORMAT:
        raise InputError(f"{path}: not a fewshot3d model file")
    if header.get("version", 0) > MODEL_FORMAT_VERSION:
        raise InputError(f"{path}: model file is from a newer fewshot3d; upgrade to read it")
    model = backend_for(header["backend"]).from_state(header.get("settings", {}), arrays)
    model.class_names = {int(k): v for k, v in header.get("class_names", {}).items()}
    return model
