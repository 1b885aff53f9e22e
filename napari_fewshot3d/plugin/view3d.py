"""A readable 3D view of a result: the image as a faint volume for context, the labels as solid shapes.

napari's defaults show a CT in 3D as a maximum-intensity projection through the soft-tissue window,
which saturates into a white block that hides the segmentation. When the viewer switches to 3D the
chosen image is drawn with an attenuated projection through a bone window (the skeleton gives the
orientation), the camera turns to an oblique view, and everything is restored on return to 2D.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..preprocess import looks_like_ct

#: HU window for the 3D context of a CT: bone stands out, soft tissue stays faint.
CT_3D_WINDOW = (150.0, 1200.0)
#: Camera angles (napari's Euler angles, degrees) of the oblique view: anterior, head up, turned and from above.
OBLIQUE = (25.0, 0.0, -60.0)
_SAVED = ("rendering", "contrast_limits", "opacity", "blending", "attenuation")


class View3D:
    """Switches the chosen image's rendering when the viewer goes to 3D and back."""

    def __init__(self, viewer: Any, widget: Any) -> None:
        self.viewer = viewer
        self.widget = widget
        #: The image layer's 2D settings while it is shown in 3D, to put back afterwards.
        self._saved: dict[str, Any] = {}
        self._layer_uid: str | None = None
        viewer.dims.events.ndisplay.connect(self._on_ndisplay)

    def _on_ndisplay(self, event: Any = None) -> None:
        if self.viewer.dims.ndisplay == 3:
            self.show()
        else:
            self.restore()

    def show(self) -> None:
        """Draw the chosen image as context and turn the camera to an oblique view."""
        try:
            layer = self.widget.image_layer()
        except InputError:  # no image chosen: napari's own 3D view
            return
        self.restore()
        self._layer_uid = str(layer.unique_id)
        self._saved = {name: getattr(layer, name) for name in _SAVED if hasattr(layer, name)}
        data = np.asarray(layer.data[:: max(1, layer.data.shape[0] // 16)])
        if looks_like_ct(data):
            layer.contrast_limits = CT_3D_WINDOW
        else:
            lo, hi = np.percentile(data, [50.0, 99.8])
            layer.contrast_limits = (float(lo), float(max(hi, lo + 1)))
        layer.rendering = "attenuated_mip"
        layer.attenuation = 0.5
        layer.opacity = 0.6
        layer.blending = "additive"
        for made in (self.widget.prediction_layer, self.widget.accepted_layer):
            if made is not None:
                made.blending = "translucent"
        self.viewer.reset_view()  # fit the volume first: it also resets the camera angles
        scene = getattr(self.viewer, "scene", None)  # napari >= 0.9 keeps the camera there
        camera = getattr(scene, "camera", None) or getattr(self.viewer, "camera", None)
        if camera is not None:
            camera.angles = OBLIQUE

    def restore(self) -> None:
        """Put the image's 2D settings back (if it is still there)."""
        if not self._saved:
            return
        layer = self.widget.layers.find(self._layer_uid)
        if layer is not None:
            for name, value in self._saved.items():
                setattr(layer, name, value)
        self._saved, self._layer_uid = {}, None
