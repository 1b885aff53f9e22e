"""The benchmark's cases (folders with an image and reference labels), the structures chosen in them, and the
support a user following the protocol of GUIDE §5 would have painted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..support import SupportSet
from ..volume import Volume
from ..volume_io import read_labels
from .protocol import paint_on_slices, paint_slices, random_slices

#: Structures benchmarked when --structures is not given, by case folder name. ct_abdomen adds the thin
#: (pancreas) and pelvic (bladder) structures GUIDE §7 reports on; any other case gets those of
#: FALLBACK_STRUCTURES its reference has.
DEFAULT_STRUCTURES: dict[str, tuple[str, ...]] = {
    "ct_abdomen": ("liver", "spleen", "kidney_right", "kidney_left", "stomach", "pancreas", "urinary_bladder"),
}
FALLBACK_STRUCTURES: tuple[str, ...] = ("liver", "spleen", "kidney_right", "kidney_left", "stomach")


@dataclass
class Case:
    """One case folder; the reference is read up front (names and presence), the image only when it runs."""

    name: str
    image_path: Path
    reference_path: Path
    reference: Volume
    class_names: dict[int, str]  # only classes present in the reference

    def value_of(self, structure: str) -> int | None:
        return next((v for v, n in self.class_names.items() if n == structure), None)


# ----------------------------------------------------------------------------- cases and structures


def _file_named(folder: Path, stem: str) -> Path | None:
    matches = sorted(p for p in folder.iterdir() if p.name.startswith(stem + "."))
    return matches[0] if matches else None


def find_cases(data: Path, names: Sequence[str] | None, notes: list[str]) -> list[Case]:
    """Every subfolder with an image and a reference (or those named); folders without a reference are noted."""
    if not data.is_dir():
        raise InputError(f"{data}: no such data folder")
    found: dict[str, tuple[Path, Path]] = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        image, reference = _file_named(folder, "image"), _file_named(folder, "reference_labels")
        if image and reference:
            found[folder.name] = (image, reference)
        elif names is None:
            notes.append(f"skipped {folder.name}: not a case (a case has image.* and reference_labels.*)")
    for name in names or ():
        if name not in found:
            raise InputError(f"case {name!r} not found in {data} (cases: {', '.join(found) or 'none'})")
    if not found:
        raise InputError(f"{data}: no case found (a case is a folder with image.* and reference_labels.*)")
    return [_read_case(name, *found[name]) for name in (names or found)]


def _read_case(name: str, image_path: Path, reference_path: Path) -> Case:
    reference = read_labels(reference_path)
    names = {int(k): str(v) for k, v in reference.metadata.get("class_names", {}).items()}
    names_file = reference_path.parent / "labels.json"
    if names_file.is_file():
        try:
            names.update({int(k): str(v) for k, v in json.loads(names_file.read_text())["labels"].items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InputError(f'{names_file}: not of the form {{"labels": {{"1": "spleen", ...}}}}') from None
    present = [int(v) for v in np.unique(reference.array) if v != 0]
    return Case(name, image_path, reference_path, reference, {v: names.get(v, f"class_{v}") for v in present})


def default_structures(case: Case) -> list[str]:
    """The structures a case is benchmarked on when none are asked for (see DEFAULT_STRUCTURES)."""
    if case.name in DEFAULT_STRUCTURES:
        return list(DEFAULT_STRUCTURES[case.name])
    return [s for s in FALLBACK_STRUCTURES if case.value_of(s) is not None]


def choose_structures(cases: Sequence[Case], requested: Sequence[str] | None, notes: list[str]) -> dict[str, list]:
    """(name, label value) per case; a structure absent from a case is noted, absent from all is an input error."""
    if requested:
        present = {n for case in cases for n in case.class_names.values()}
        for name in requested:
            if name not in present:
                raise InputError(f"unknown structure {name!r}: no case's reference has it (names from labels.json)")
    chosen = {}
    for case in cases:
        chosen[case.name] = []
        for name in dict.fromkeys(requested or default_structures(case)):
            value = case.value_of(name)
            if value is None:
                notes.append(f"{case.name}: no {name} in the reference; skipped")
            else:
                chosen[case.name].append((name, value))
    if not any(chosen.values()):
        raise InputError("no structure to benchmark in the chosen cases; name some with --structures")
    return chosen


# ----------------------------------------------------------------------------- painted support


def make_support(reference: Volume, structures: Sequence, axis: int, k: int, seed: int | None) -> SupportSet:
    """What a user following the protocol (or, with a seed, picking slices at random) would have painted."""
    values = [value for _, value in structures]
    if seed is None:
        painted = paint_slices(reference.array, values, axis, k)
    else:
        slices = {s for v in values for s in random_slices(reference.array == v, axis, k, seed)}
        painted = paint_on_slices(reference.array, values, axis, sorted(slices))
    return SupportSet.from_labels(reference.with_array(painted, name="support"), axis, {v: n for n, v in structures})
