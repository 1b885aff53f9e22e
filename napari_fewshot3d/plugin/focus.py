"""Which slice of the chosen image the user is looking at, for background embedding to do first.

Kept up to date on the GUI thread from napari's dims events, and read (one integer) by the worker thread: the
worker never touches the viewer."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..volume import Volume
from .layer_io import display_order


class SliceInView:
    """The array index, along an axis of one image, of the slice napari shows now (None: another image or axis)."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self._layer: Any = None
        self._volume: Volume | None = None
        self._axis = 0
        self._index: int | None = None
        viewer.dims.events.point.connect(self._update)
        viewer.dims.events.ndisplay.connect(self._update)

    def watch(self, layer: Any, volume: Volume, axis: int) -> None:
        self._layer, self._volume, self._axis = layer, volume, axis
        self._update()

    def __call__(self) -> int | None:
        return self._index

    def _update(self, _: Any = None) -> None:
        self._index = None
        if self._layer is None or self._volume is None or self.viewer.dims.ndisplay != 2:
            return
        order, flips = display_order(self._volume.affine)
        shown = order.index(self._axis)  # the layer's data is the array in display order
        if shown not in self.viewer.dims.not_displayed:
            return  # the embedding axis lies in the view's plane: no single slice is in view
        point = self._layer.world_to_data(self.viewer.dims.point)
        step = int(np.clip(round(float(point[shown])), 0, self._volume.shape[self._axis] - 1))
        self._index = self._volume.shape[self._axis] - 1 - step if self._axis in flips else step
