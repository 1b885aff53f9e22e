"""The one place where engine volumes become napari layer data and back.

The engine indexes arrays (i, j, k) with a voxel-to-RAS affine; napari shows an array's first axis on
the slider and the last two on screen. A volume is shown as (S, P, L): axial slices on the slider
(inferior to superior), anterior at the top and the patient's right on the screen's left (the
radiological view), whatever order and flips the file stored. The exact affine and the permutation
travel in the layer's metadata, so that a mask painted on the layer goes back to the file's own grid
and geometry without any resampling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..colors import class_color
from ..dicom_series import DICOM_KEY
from ..errors import InputError
from ..volume import LPS_FROM_RAS, Volume, world_axis_of_array_axes
from ..volume_io import NIFTI_CODES_KEY

#: Key of our entry in a layer's ``metadata``.
META_KEY = "fewshot3d"

#: For each displayed axis (slider, rows, columns), the LPS world axis it follows.
_DISPLAY_WORLD_AXES = (2, 1, 0)


def display_order(affine: np.ndarray) -> tuple[list[int], list[int]]:
    """Array axes in display order (S, P, L) and the array axes to flip first so indices grow toward L, P, S."""
    world = world_axis_of_array_axes(affine)
    lps = (LPS_FROM_RAS @ np.asarray(affine, dtype=float))[:3, :3]
    flips = [a for a in range(3) if lps[world[a], a] < 0]
    order = [int(np.flatnonzero(world == w)[0]) for w in _DISPLAY_WORLD_AXES]
    return order, flips


def _to_display(array: np.ndarray, order: list[int], flips: list[int]) -> np.ndarray:
    for axis in flips:
        array = np.flip(array, axis)
    return array.transpose(order)


def _from_display(data: np.ndarray, order: list[int], flips: list[int]) -> np.ndarray:
    array = np.asarray(data).transpose(np.argsort(order))
    for axis in flips:
        array = np.flip(array, axis)
    return array


#: What a volume's metadata says about its source file that a labels file written for it needs (the DICOM series a
#: SEG references, the NIfTI codes to keep); it travels with the layer and with the layers painted on it.
SOURCE_KEYS = (DICOM_KEY, NIFTI_CODES_KEY)

#: The entries of our layer metadata that describe the grid and its source (not a layer's classes or role).
GRID_KEYS = ("affine", "shape", "order", "flip", "source")


def geometry_metadata(volume: Volume) -> dict[str, Any]:
    """What a layer must carry to be turned back into ``volume``'s grid exactly, with its source's identity."""
    order, flips = display_order(volume.affine)
    geometry = {"affine": volume.affine.tolist(), "shape": list(volume.shape), "order": order, "flip": flips}
    source = {key: volume.metadata[key] for key in SOURCE_KEYS if key in volume.metadata}
    if source:
        geometry["source"] = source
    return geometry


def volume_to_layer_data(volume: Volume, contiguous: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Layer data in display order plus the layer keyword arguments (name, scale, translate, metadata).

    ``scale`` is the voxel spacing and ``translate`` the LPS position of the first displayed voxel
    (as napari world (S, P, L) millimetres), so that volumes on different grids overlay where they lie.
    """
    geometry = geometry_metadata(volume)
    order, flips = geometry["order"], geometry["flip"]
    data = _to_display(volume.array, order, flips)
    if contiguous:
        data = np.ascontiguousarray(data)
    first = np.array([volume.shape[a] - 1 if a in flips else 0 for a in range(3)] + [1], dtype=float)
    first_lps = (volume.affine_lps @ first)[:3]
    metadata: dict[str, Any] = {META_KEY: geometry}
    kwargs = {
        "name": volume.name or "volume",
        "scale": tuple(float(volume.spacing[a]) for a in order),
        "translate": tuple(float(first_lps[w]) for w in _DISPLAY_WORLD_AXES),
        "metadata": metadata,
    }
    return data, kwargs


def labels_layer_kwargs(
    kwargs: dict[str, Any],
    class_names: Mapping[int, str] | None = None,
    class_colors: Mapping[int, Any] | None = None,
) -> dict[str, Any]:
    """Layer keyword arguments of a labels layer: class names in metadata and the shared class colours."""
    kwargs = dict(kwargs)
    metadata = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kwargs.get("metadata", {}).items()}
    entry = metadata.setdefault(META_KEY, {})
    entry["class_names"] = {int(k): str(v) for k, v in (class_names or {}).items()}
    entry["class_colors"] = {int(k): [float(c) for c in v] for k, v in (class_colors or {}).items()}
    kwargs["metadata"] = metadata
    kwargs["colormap"] = label_colormap(class_colors)
    return kwargs


def label_colormap(class_colors: Mapping[int, Any] | None = None) -> dict[int | None, tuple[float, ...]]:
    """A direct label colormap with the project's class colours (any value up to 255 has one)."""
    colors: dict[int | None, tuple[float, ...]] = {None: (0.6, 0.6, 0.6, 1.0), 0: (0.0, 0.0, 0.0, 0.0)}
    for value in range(1, 256):
        colors[value] = (*class_color(value), 1.0)
    for value, rgb in (class_colors or {}).items():
        colors[int(value)] = (*[float(c) for c in list(rgb)[:3]], 1.0)
    return colors


def has_geometry(metadata: Mapping[str, Any] | None) -> bool:
    return bool(metadata) and isinstance(metadata.get(META_KEY), dict) and "affine" in metadata[META_KEY]


def class_info(metadata: Mapping[str, Any] | None) -> tuple[dict[int, str], dict[int, list[float]]]:
    """Class names and colours a labels layer carries (empty when it carries none)."""
    entry = (metadata or {}).get(META_KEY, {}) or {}
    names = {int(k): str(v) for k, v in entry.get("class_names", {}).items()}
    colors = {int(k): list(v) for k, v in entry.get("class_colors", {}).items()}
    return names, colors


def data_to_volume(data: Any, metadata: Mapping[str, Any], name: str = "") -> Volume:
    """Layer data back on the source grid (a view where possible), using the geometry in ``metadata``."""
    if not has_geometry(metadata):
        raise InputError(f"layer {name!r} carries no image geometry")
    geometry = metadata[META_KEY]
    array = np.asarray(data)
    if array.ndim != 3:
        raise InputError(f"layer {name!r} is not 3D (shape {array.shape})")
    array = _from_display(array, list(geometry["order"]), list(geometry["flip"]))
    if list(array.shape) != list(geometry["shape"]):
        raise InputError(f"layer {name!r} has shape {array.shape}, its geometry expects {tuple(geometry['shape'])}")
    source = {key: value for key, value in (geometry.get("source") or {}).items() if key in SOURCE_KEYS}
    return Volume(array, np.asarray(geometry["affine"], dtype=float), name, metadata=source)


def geometry_from_scale(shape: tuple[int, ...], scale: Any, translate: Any) -> dict[str, Any]:
    """Geometry for a layer that came without ours (a TIFF stack, a layer napari made): its axes are read
    as (S, P, L) millimetres, the convention of our own layers, so it shows and exports unchanged."""
    scale = np.asarray(scale, dtype=float)[-3:]
    translate = np.asarray(translate, dtype=float)[-3:]
    affine_lps = np.eye(4)
    for display_axis, world_axis in enumerate(_DISPLAY_WORLD_AXES):
        array_axis = 2 - display_axis  # the volume stores (L, P, S) = the display axes reversed
        affine_lps[world_axis, array_axis] = scale[display_axis]
        affine_lps[world_axis, 3] = translate[display_axis]
    affine = LPS_FROM_RAS @ affine_lps
    order, flips = display_order(affine)
    return {"affine": affine.tolist(), "shape": list(shape[::-1]), "order": order, "flip": flips}


def layer_to_volume(layer: Any, like: Any | None = None) -> Volume:
    """A napari layer as an engine volume on its source grid.

    A layer without our geometry takes that of ``like`` (the image it was painted on) when it has the
    same shape and spacing — the labels layer napari's own "new labels" button makes — and otherwise
    the plain reading of its scale and translate.
    """
    metadata = dict(layer.metadata or {})
    if not has_geometry(metadata):
        data_shape = tuple(np.shape(layer.data))
        if (
            like is not None
            and has_geometry(like.metadata)
            and data_shape == tuple(np.shape(like.data))
            and np.allclose(np.asarray(layer.scale)[-3:], np.asarray(like.scale)[-3:], rtol=1e-4)
        ):
            metadata[META_KEY] = {k: v for k, v in like.metadata[META_KEY].items() if k in GRID_KEYS}
        elif len(data_shape) == 3:
            metadata[META_KEY] = geometry_from_scale(data_shape, layer.scale, layer.translate)
    volume = data_to_volume(layer.data, metadata, layer.name)
    names, colors = class_info(metadata)
    if names:
        volume.metadata["class_names"] = names
    if colors:
        volume.metadata["class_colors"] = colors
    return volume
