"""The dock widget's result layers: each image's prediction (made once, updated in place) and accepted segmentation.

Both are found again by their napari layer id per image, so a user may rename or move them; a deleted one is
simply absent and the next result makes it anew.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .reader import labels_layer_data
from .viewer_layers import PREDICTION, SEGMENTATION, layer_id, tagged


class ResultLayers:
    """Mixed into the dock widget, which provides ``viewer``, ``layers``, ``_made``, the image picker and messages."""

    def _made_layer(self, role: str) -> Any:
        """This image's prediction or accepted segmentation, if the user has not deleted it."""
        image_uid = self.image_combo.currentData()
        return self.layers.find(self._made.get((image_uid, role))) if image_uid else None

    @property
    def prediction_layer(self) -> Any:
        return self._made_layer(PREDICTION)

    @property
    def accepted_layer(self) -> Any:
        return self._made_layer(SEGMENTATION)

    def _show_prediction(
        self, image_layer: Any, result: Volume, names: dict[int, str], colors: dict[int, list[float]]
    ) -> Any:
        """Show a result in the image's own prediction layer (made on first use, updated in place after)."""
        result.metadata["class_names"] = dict(names)
        result.metadata["class_colors"] = dict(colors)
        name = f"{image_layer.name} prediction"
        data, kwargs, _ = labels_layer_data(result, name=name)
        kwargs["metadata"] = tagged(kwargs["metadata"], PREDICTION, image_layer)
        key = (layer_id(image_layer), PREDICTION)
        layer = self.layers.find(self._made.get(key))
        if layer is not None and layer.data.shape == data.shape:
            layer.metadata = kwargs["metadata"]
            layer.colormap = kwargs["colormap"]
            layer.data = data
            layer.refresh()
        else:
            kwargs["opacity"] = 0.5
            layer = self.viewer.add_labels(data, **kwargs)
            self._made[key] = layer_id(layer)
            self.reset_choices()
        if names:  # a correction painted with the brush's default label 1 would add a class nobody asked for
            layer.selected_label = min(names)
        self._update_buttons()
        return layer

    def accept(self) -> Any:
        """Copy the prediction (with the user's corrections) into the final labels layer."""
        source = self.prediction_layer
        if source is None:
            return self._fail(InputError("nothing to accept: run 'Adapt and segment' first"))
        image_layer = self.image_layer()
        data = np.array(source.data, copy=True)
        metadata = tagged(source.metadata, SEGMENTATION, image_layer)
        accepted = self.accepted_layer
        if accepted is not None and accepted.data.shape == data.shape:
            accepted.metadata = metadata
            accepted.data = data
        else:
            accepted = self.viewer.add_labels(
                data,
                name=f"{image_layer.name} segmentation",
                scale=source.scale,
                translate=source.translate,
                metadata=metadata,
            )
            accepted.colormap = source.colormap
            self._made[(layer_id(image_layer), SEGMENTATION)] = layer_id(accepted)
            self.reset_choices()
        self._say(f"Accepted into {accepted.name!r}. Export it to a file with 'Export…'.")
        self._update_buttons()
        return accepted
