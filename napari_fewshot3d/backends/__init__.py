"""The backend registry. Backends are imported only when used, so the CLI starts fast and a
backend's heavy dependencies (ITK, torch, MONAI) are loaded only by those who choose it.

Backends take their options as keyword arguments of their constructor (``get_backend("swin-unetr",
weights=PATH)``); :func:`backend_options` lists them, so that front ends can check and route options
without knowing each backend."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError
from .base import AdaptedModel, Backend

#: name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "hybrid": "napari_fewshot3d.backends.hybrid.backend:HybridBackend",
    "interpolate": "napari_fewshot3d.backends.interpolate:InterpolateBackend",
    "pixel-classifier": "napari_fewshot3d.backends.pixel.backend:PixelClassifierBackend",
    "selfprompt-sam": "napari_fewshot3d.backends.selfprompt.backend:SelfPromptSamBackend",
    "swin-unetr": "napari_fewshot3d.backends.swin.backend:SwinUnetrBackend",
}

#: What `fewshot3d segment` uses when no --backend is given.
DEFAULT_BACKEND = "hybrid"


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def register_backend(name: str, target: str) -> None:
    """Add a backend ("module:Class"), e.g. from another package or a test."""
    _REGISTRY[name] = target


def _backend_class(name: str) -> type[Backend]:
    if name not in _REGISTRY:
        raise InputError(f"unknown backend {name!r}: choose one of {', '.join(available_backends())}")
    module_name, class_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def backend_options(name: str) -> set[str]:
    """The keyword options a backend's constructor takes."""
    parameters = inspect.signature(_backend_class(name).__init__).parameters
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in parameters.values() if p.name != "self" and p.kind in kinds}


def get_backend(name: str, **options: Any) -> Backend:
    """A fresh backend; ``options`` go to its constructor, and one it does not take is an input error."""
    unknown = sorted(set(options) - backend_options(name)) if options else []
    if unknown:
        raise InputError(f"backend {name} takes no option {', '.join(unknown)}")
    return _backend_class(name)(**options)


def route_options(
    backends: Sequence[str], options: dict[str, Any], names: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Per backend, the options it takes; an option none of them takes is an input error (naming the option as
    the caller's user knows it: ``names`` maps option -> e.g. a command-line flag)."""
    taken = {name: backend_options(name) for name in backends}
    for key in options:
        if not any(key in keys for keys in taken.values()):
            owners = [name for name in available_backends() if key in backend_options(name)]
            whose = ""
            if owners:
                whose = (
                    f" (it is one of {owners[0]}'s)"
                    if len(owners) == 1
                    else f" (backends taking it: {', '.join(owners)})"
                )
            raise InputError(f"{(names or {}).get(key, key)} is not an option of {', '.join(backends)}{whose}")
    return {name: {k: v for k, v in options.items() if k in taken[name]} for name in backends}


__all__ = [
    "AdaptedModel",
    "Backend",
    "DEFAULT_BACKEND",
    "available_backends",
    "backend_options",
    "get_backend",
    "register_backend",
    "route_options",
]
