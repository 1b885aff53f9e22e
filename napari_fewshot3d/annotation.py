"""The correction rounds of one image along one axis, the same for every front end (napari and the Slicer module).

After a prediction is shown, the user corrects some of its slices; "Re-adapt" takes every slice that differs from
what was shown as reviewed (it counts as painted, and an emptied slice says "nothing here" for every class). Slices
reviewed in earlier rounds stay support. A round's reviewed slices are committed only once its job has succeeded:
a failed or cancelled re-adapt leaves the state as it was, so nothing the user corrected is lost or double-counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .support import SupportSet, background_in, changed_slices, merge_reviewed
from .volume import Volume


@dataclass(frozen=True)
class Round:
    """One adaptation's support, and the slices it takes as reviewed (to commit if it succeeds)."""

    support: SupportSet
    reviewed: frozenset[int]
    readapt: bool


@dataclass
class Annotation:
    """What the correction rounds of one image along array ``axis`` have established so far."""

    axis: int
    #: The prediction as last shown (labels on the image's grid), to find the slices corrected since.
    shown: np.ndarray | None = None
    #: Slices the user has corrected in any committed round; they stay support in later rounds.
    reviewed: set[int] = field(default_factory=set)

    def next_round(
        self, painted: Volume, corrected: np.ndarray | None = None, class_names: Mapping[int, str] | None = None
    ) -> Round:
        """The support of the next adaptation: the painted labels alone, or (re-adapting, given the prediction as the
        user has corrected it) with every slice reviewed in this or an earlier round taken from the correction.
        Changes nothing here; see :meth:`commit`. A class named "background" marks scribbles (see support.py)."""
        background = background_in({**painted.metadata.get("class_names", {}), **(class_names or {})})
        if corrected is None:
            support = SupportSet.from_labels(painted, self.axis, class_names, background=background)
            return Round(support, frozenset(), readapt=False)
        if self.shown is None:
            raise InputError("nothing to re-adapt: run 'Adapt and segment' first")
        reviewed = self.reviewed | changed_slices(self.shown, corrected, self.axis)
        labels, empty = merge_reviewed(painted, corrected, reviewed, self.axis)
        support = SupportSet.from_labels(labels, self.axis, class_names, empty, background)
        return Round(support, frozenset(reviewed), readapt=True)

    def commit(self, shown: np.ndarray | None, done: Round | None = None) -> None:
        """Call once a job has succeeded and its result is shown: ``shown`` is that result (None when it cannot be
        re-adapted on), ``done`` the round that produced it (None for a saved model applied)."""
        self.shown = None if shown is None else np.array(shown, copy=True)
        self.reviewed = set(done.reviewed) if done is not None and done.readapt else set()


def check_same_grid(image: Volume, labels: Volume, what: str) -> None:
    """Labels painted for an image must lie on its grid (front ends make support layers that do)."""
    if not image.same_grid(labels):
        raise InputError(
            f"{what} is not on the image's grid (shape {labels.shape} vs {image.shape} or different geometry): "
            "make it with 'New support layer'"
        )
