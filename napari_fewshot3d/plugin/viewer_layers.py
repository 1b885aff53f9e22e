"""The widget's view of the viewer's layers, by napari's stable ``unique_id``, never by object identity.

napari hands a plugin dock a public-only proxy of the viewer: a layer reached through it is a wrapper,
so ``layer is my_layer`` fails across that boundary. Ids survive the proxy, renaming and reordering,
and a deleted layer is simply not found. The layers the widget makes carry their role and the id of
their image in their metadata, so the pickers can leave them out and they can be found again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .layer_io import META_KEY

#: Roles of the layers the widget makes (in ``metadata[META_KEY]["role"]``).
SUPPORT, PREDICTION, SEGMENTATION = "support", "prediction", "segmentation"


def layer_id(layer: Any) -> str:
    return str(layer.unique_id)


def role_of(layer: Any) -> str:
    entry = (layer.metadata or {}).get(META_KEY) or {}
    return str(entry.get("role", ""))


def image_id_of(layer: Any) -> str:
    entry = (layer.metadata or {}).get(META_KEY) or {}
    return str(entry.get("image_id", ""))


def tagged(metadata: dict[str, Any], role: str, image: Any) -> dict[str, Any]:
    """A copy of ``metadata`` saying which role the layer plays for which image."""
    metadata = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (metadata or {}).items()}
    entry = metadata.setdefault(META_KEY, {})
    entry["role"], entry["image_id"] = role, layer_id(image)
    return metadata


class ViewerLayers:
    """Finds, lists and watches the viewer's layers for the widget (proxy or not)."""

    def __init__(self, viewer: Any, on_change: Callable[[], None]) -> None:
        self.viewer = viewer
        self._on_change = on_change
        events = viewer.layers.events
        for name in ("inserted", "removed", "moved", "reordered"):
            emitter = getattr(events, name, None)
            if emitter is not None:
                emitter.connect(self._changed)
        for layer in viewer.layers:
            layer.events.name.connect(self._changed)

    def _changed(self, event: Any = None) -> None:
        inserted = getattr(event, "type", "") == "inserted" and getattr(event, "value", None) is not None
        if inserted:
            event.value.events.name.connect(self._changed)  # a rename refreshes the pickers too
        self._on_change()

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.viewer.layers))

    def find(self, uid: str | None) -> Any:
        """The layer with this id, or None when it is not (or no longer) in the viewer."""
        if not uid:
            return None
        for layer in self:
            if layer_id(layer) == uid:
                return layer
        return None

    def images(self) -> list[Any]:
        import napari

        return [layer for layer in self if isinstance(layer, napari.layers.Image)]

    def paintable(self) -> list[Any]:
        """Labels layers a user may paint support in: not the predictions or results the widget made."""
        import napari

        return [
            layer
            for layer in self
            if isinstance(layer, napari.layers.Labels) and role_of(layer) not in (PREDICTION, SEGMENTATION)
        ]
