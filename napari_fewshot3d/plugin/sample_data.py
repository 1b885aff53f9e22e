"""napari sample data: the MNI152 brain MRI that ships with nilearn, with grey/white matter reference labels.

It needs no network, so a fresh install can try the whole workflow at once.
"""

from __future__ import annotations

from ..sample_data import mni152_brain
from .reader import LayerData, image_layer_data, labels_layer_data


def mni152_sample() -> list[LayerData]:
    """The T1 image and its reference tissue labels (grey matter = 1, white matter = 2)."""
    case = mni152_brain()
    image = image_layer_data(case.image)
    reference = labels_layer_data(case.reference, name="mni152 reference")
    reference[1]["opacity"] = 0.4
    reference[1]["visible"] = False
    return [image, reference]
