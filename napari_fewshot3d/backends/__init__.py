"""The backend registry. Backends are imported only when used, so the CLI starts fast and a
backend's heavy dependencies (ITK, torch) are loaded only by those who choose it."""

from __future__ import annotations

import importlib

from ..errors import InputError
from .base import AdaptedModel, Backend

#: name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "interpolate": "napari_fewshot3d.backends.interpolate:InterpolateBackend",
    "selfprompt-sam": "napari_fewshot3d.backends.selfprompt_sam:SelfPromptSamBackend",
}

#: What `fewshot3d segment` uses when no --backend is given.
DEFAULT_BACKEND = "selfprompt-sam"


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def register_backend(name: str, target: str) -> None:
    """Add a backend ("module:Class"), e.g. from another package or a test."""
    _REGISTRY[name] = target


def get_backend(name: str) -> Backend:
    if name not in _REGISTRY:
        raise InputError(f"unknown backend {name!r}: choose one of {', '.join(available_backends())}")
    module_name, class_name = _REGISTRY[name].split(":")
    backend = getattr(importlib.import_module(module_name), class_name)()
    return backend


__all__ = ["AdaptedModel", "Backend", "DEFAULT_BACKEND", "available_backends", "get_backend", "register_backend"]
