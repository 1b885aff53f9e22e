"""The dock widget's support-layer actions: a new layer to paint in, and the background label for scribbles."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..support import BACKGROUND_NAME, background_in
from .reader import labels_layer_data
from .session import format_class_names, parse_class_names
from .viewer_layers import SUPPORT, layer_id, tagged


class SupportActions:
    """Mixed into the dock widget, which provides ``viewer``, the combos, ``classes_edit`` and ``_fail``/``_say``."""

    def new_support_layer(self) -> Any:
        """An empty labels layer on the image's grid (same scale, position and geometry) to paint in."""
        try:
            image_layer = self.image_layer()
            image = self.image_volume()
        except InputError as exc:
            return self._fail(exc)
        name = f"{image_layer.name} support"
        empty = image.with_array(np.zeros(image.shape, np.uint8), name=name)
        empty.metadata = {}
        data, kwargs, _ = labels_layer_data(empty, name=name)
        kwargs["metadata"] = tagged(kwargs["metadata"], SUPPORT, image_layer)
        layer = self.viewer.add_labels(data, **kwargs)
        self.support_combo.setCurrentIndex(max(self.support_combo.findData(layer_id(layer)), 0))
        layer.mode = "paint"
        try:
            layer.selected_label = min(parse_class_names(self.classes_edit.text()), default=1)
        except InputError:
            layer.selected_label = 1
        self.viewer.layers.selection.active = layer
        return layer

    def paint_background(self) -> int | None:
        """Select the background label in the support layer (naming one in Classes if none is), to paint strokes
        of "certainly no structure": scribbles instead of whole slices. Returns its label value."""
        try:
            layer = self.support_layer()
            names = parse_class_names(self.classes_edit.text())
        except InputError as exc:
            return self._fail(exc)
        value = background_in(names)
        if value is None:
            painted = int(np.max(layer.data)) if np.size(layer.data) else 0
            value = max([painted, *names]) + 1
            names[value] = BACKGROUND_NAME
            self.classes_edit.setText(format_class_names(names))
        layer.selected_label = value
        layer.mode = "paint"
        self.viewer.layers.selection.active = layer
        self._say(
            f"Painting background (label {value}): on a slice with background strokes only what you paint counts; "
            "paint a stroke inside each structure there too."
        )
        return value
