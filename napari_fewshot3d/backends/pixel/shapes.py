"""From voxel votes to structures: the connected pieces the painting vouches for, with their holes filled.

A forest judges each voxel alone, so look-alike tissue elsewhere (another organ of the same density) votes for
the class too. On the volume it was painted on, the pieces that touch the painted voxels are the structure; on
another scan, the largest piece is. Holes (vessels inside the liver) are filled where no other class claims them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

_CONNECTED = ndi.generate_binary_structure(3, 1)


def keep_structures(labels: np.ndarray, values: list[int], seeds: np.ndarray | None) -> tuple[np.ndarray, list[int]]:
    """``labels`` with, per class, only the pieces touching its voxels in ``seeds`` (painted labels on the same
    grid), or the largest piece when there are no seeds; returns the labels and the classes left empty."""
    out = np.zeros_like(labels)
    missing = []
    for value in values:
        pieces, count = ndi.label(labels == value, _CONNECTED)
        if count == 0:
            missing.append(value)
            continue
        if seeds is not None:
            touched = np.unique(pieces[(seeds == value) & (pieces > 0)])
        else:
            touched = [int(np.argmax(np.bincount(pieces.ravel())[1:])) + 1]
        if len(touched) == 0:
            missing.append(value)
            continue
        kept = ndi.binary_fill_holes(np.isin(pieces, touched))
        out[kept & ((out == 0) | (labels == value))] = value
    return out, missing
