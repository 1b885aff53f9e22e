"""The bench's apply section: a model adapted on one case, saved, loaded and applied to other scans.

For each case, k and backend that can save a model: paint every chosen structure of the case at once (the
protocol's k slices each), adapt, write the model file and read it back, then apply it — as ``fewshot3d apply``
does, with no painted slice — to the same case, to that case resampled onto another grid
(:mod:`.other_scan`: another spacing, orientation and field of view) and to every other case of the run. Dice
per structure against each target's reference; a refusal (another modality) or a class reported not found is a
row too, so the table says what a user would have been told.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import engine
from ..backends import Backend
from ..errors import InputError
from ..volume import Volume
from .cases import make_support
from .metrics import dice_score
from .other_scan import OtherGrid, other_scan

SAME, OTHER_GRID, OTHER_CASE = "same scan", "other grid", "other case"


#: A case as the apply section sees it: image, reference on its grid, and its reference's label value by name.
Scan = tuple[Volume, Volume, dict[str, int]]


def targets_of(name: str, others: dict[str, Scan], axis: int) -> list[tuple[str, str, Scan]]:
    """(target name, kind, scan) a model adapted on case ``name`` is applied to."""
    image, reference, values = others[name]
    grid = OtherGrid()
    moved = other_scan(image, reference, grid, axis)
    out = [(name, SAME, others[name]), (f"{name} on {grid.describe()}", OTHER_GRID, (*moved, values))]
    return out + [(other, OTHER_CASE, scan) for other, scan in others.items() if other != name]


def apply_section(
    case: str,
    structures: Sequence[tuple[str, int]],
    ks: Sequence[int],
    backend_of: Callable[[], Backend],
    device: str,
    scans: dict[str, Scan],
    axis: int,
) -> list[dict[str, Any]]:
    """Rows of the apply section for source ``case`` of ``scans`` (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    image, reference, _ = scans[case]
    targets = targets_of(case, scans, axis)
    for k in ks:
        backend = backend_of()
        support = make_support(reference, structures, axis, k, None)
        common = {"section": "apply", "source": case, "k": k, "backend": backend.name}
        with tempfile.TemporaryDirectory(prefix="fewshot3d-bench-model-") as folder:
            path = engine.save_model(engine.adapt(image, support, backend, device), Path(folder) / "model.fs3d")
            model = engine.load_model(path, lambda name, backend=backend: backend)
            for target, kind, scan in targets:
                where = common | {"target": target, "kind": kind}
                rows.extend(row | where for row in _apply_one(model, scan, structures, device))
    return rows


def _apply_one(model, scan: Scan, structures, device: str) -> list[dict[str, Any]]:
    """The model's classes (its label values) scored against the target's reference classes of the same name."""
    volume, truth, values = scan
    started = time.perf_counter()
    try:
        result = engine.apply_model(model, volume, device)
    except InputError as exc:
        return [{"structure": n, "status": "refused", "dice": None, "note": str(exc)} for n, _ in structures]
    seconds = time.perf_counter() - started
    warnings = result.metadata.get(engine.WARNINGS, [])
    rows = []
    for name, value in structures:
        said = [w for w in warnings if w.startswith(f"{name} (label {value})")]
        target = values.get(name)
        present = target is not None and bool((truth.array == target).any())
        dice = dice_score(result.array == value, truth.array == target) if present else None
        status = "not found" if said else "ok" if present else "absent from the reference"
        rows.append({"structure": name, "status": status, "dice": dice, "note": " ".join(said), "apply_s": seconds})
    return rows


def apply_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: Dice per structure of each (source, k, target), and what a user was told."""
    chosen = [r for r in rows if r.get("section") == "apply"]
    if not chosen:
        return ""
    lines = [
        "## Apply: a saved model on scans it was not adapted on",
        "",
        "Adapted on the source case (all structures painted at once, protocol slices), saved, loaded and applied "
        "with no painted slice. 'other grid': the source resampled to another spacing, orientation and field of "
        "view (bench/other_scan.py).",
        "",
        "| source | k | backend | target | kind | structure | Dice | status | apply s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in chosen:
        dice = "—" if r["dice"] is None else f"{r['dice']:.3f}"
        seconds = f"{r['apply_s']:.0f}" if r.get("apply_s") is not None else "—"
        status = r["status"] + (f": {r['note']}" if r.get("note") else "")
        lines.append(
            f"| {r['source']} | {r['k']} | {r['backend']} | {r['target']} | {r['kind']} | {r['structure']} | {dice} "
            f"| {status} | {seconds} |"
        )
    return "\n".join(lines) + "\n"


def apply_summary(rows: Sequence[dict[str, Any]]) -> str:
    """One line per (source, k, kind): mean Dice over its structures, for the terminal summary."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        if r.get("section") == "apply" and r["dice"] is not None and r["status"] != "refused":
            groups.setdefault((r["source"], r["k"], r["backend"], r["target"]), []).append(r["dice"])
    refused = sorted({(r["source"], r["target"]) for r in rows if r.get("status") == "refused"})
    lines = [f"apply {s} k={k} {b} -> {t}: mean Dice {np.mean(v):.3f}" for (s, k, b, t), v in groups.items()]
    lines += [f"apply {s} -> {t}: refused (another modality)" for s, t in refused]
    return "\n".join(lines) + ("\n" if lines else "")
