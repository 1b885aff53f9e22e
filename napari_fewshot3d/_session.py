"""The annotation state behind the napari widget, kept free of Qt and napari so it can be tested alone.

It remembers the last prediction shown, so that the slices a user corrects in the prediction layer can
be found (they differ from what was shown) and used as support when re-adapting: a corrected slice is a
slice the user has looked at, so it counts as painted, and a slice emptied by the user says "nothing
here" for every class.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .backends import AdaptedModel
from .errors import InputError
from .support import SupportSet, changed_slices, merge_reviewed
from .volume import Volume

_CLASS_ENTRY = re.compile(r"^\s*(\d+)\s*[=:]\s*(.*?)\s*$")


def parse_class_names(text: str) -> dict[int, str]:
    """'1=liver, 2=spleen' (commas, semicolons or new lines) -> {1: 'liver', 2: 'spleen'}."""
    names: dict[int, str] = {}
    for entry in re.split(r"[,;\n]", text or ""):
        if not entry.strip():
            continue
        match = _CLASS_ENTRY.match(entry)
        if not match or not match.group(2):
            raise InputError(f"class names: cannot read {entry.strip()!r}; write them as '1=liver, 2=spleen'")
        value = int(match.group(1))
        if value == 0:
            raise InputError("class names: 0 is the background and takes no name")
        names[value] = match.group(2)
    return names


def format_class_names(names: Mapping[int, str]) -> str:
    return ", ".join(f"{value}={name}" for value, name in sorted(names.items()))


@dataclass
class Session:
    """What one image's annotation has produced so far."""

    image: Volume
    axis: int
    class_names: dict[int, str] = field(default_factory=dict)
    class_colors: dict[int, list[float]] = field(default_factory=dict)
    model: AdaptedModel | None = None
    #: The prediction as last shown (source grid), to find the slices a user has corrected since.
    shown: np.ndarray | None = None
    #: Slices the user has corrected in any round; they stay support in later rounds.
    reviewed: set[int] = field(default_factory=set)

    def support_set(self, support: Volume, prediction: np.ndarray | None = None) -> tuple[SupportSet, set[int]]:
        """The support for the next adaptation and the slices reviewed so far (kept only if it succeeds).

        Without ``prediction`` it is the support layer alone; with it, every slice corrected in this or an
        earlier round is support too."""
        check_same_grid(self.image, support, "support layer")
        reviewed: set[int] = set()
        if prediction is None:
            labels, empty = support, []
        else:
            if self.shown is None:
                raise InputError("nothing to re-adapt: run 'Adapt and segment' first")
            reviewed = self.reviewed | changed_slices(self.shown, prediction, self.axis)
            labels, empty = merge_reviewed(support, prediction, reviewed, self.axis)
        names = dict(support.metadata.get("class_names", {}))
        names.update(self.class_names)
        result = SupportSet.from_labels(labels, self.axis, names, empty)
        result.class_colors = {**self.class_colors, **result.class_colors}
        return result, reviewed

    def record(self, prediction: Volume, model: AdaptedModel | None, reviewed: set[int]) -> None:
        """Remember what is shown now and the slices its adaptation took as reviewed (none for a fresh one)."""
        self.shown = np.array(prediction.array, copy=True)
        self.model = model
        self.reviewed = set(reviewed)


def check_same_grid(image: Volume, labels: Volume, what: str) -> None:
    if not image.same_grid(labels):
        raise InputError(
            f"{what} is not on the image's grid (shape {labels.shape} vs {image.shape} or different geometry): "
            "make it with 'New support layer'"
        )
