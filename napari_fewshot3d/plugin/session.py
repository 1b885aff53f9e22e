"""One image's state in the napari widget: its correction rounds (shared with the Slicer module), the class names
and colours typed or painted for it, and the last adapted model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..annotation import Annotation, Round, check_same_grid
from ..backends import AdaptedModel
from ..errors import InputError
from ..volume import Volume

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
class Session(Annotation):
    """What one image's annotation along one axis has produced so far."""

    image: Volume | None = None
    class_names: dict[int, str] = field(default_factory=dict)
    class_colors: dict[int, list[float]] = field(default_factory=dict)
    model: AdaptedModel | None = None

    def support_round(self, support: Volume, prediction: np.ndarray | None = None) -> Round:
        """The next round from the support layer (and, re-adapting, the prediction layer as corrected)."""
        if self.image is not None:
            check_same_grid(self.image, support, "support layer")
        names = dict(support.metadata.get("class_names", {}))
        names.update(self.class_names)
        round_ = self.next_round(support, prediction, names)
        round_.support.class_colors = {**self.class_colors, **round_.support.class_colors}
        return round_

    def record(self, prediction: Volume, model: AdaptedModel | None, done: Round | None) -> None:
        """A job succeeded and its result is shown: commit its round and keep its model."""
        self.commit(prediction.array, done)
        self.model = model
