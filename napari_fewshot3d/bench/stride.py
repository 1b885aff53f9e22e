"""What tracking a stride of thin slices costs: the first such run of the bench done again on every slice.

On slices thinner than the tracking step (outline.TRACK_STEP_MM) the SAM learners encode only every few slices and
fill the rest; whether that loses accuracy is measured, not assumed: the same support set, a fresh backend told to
track every slice (``track_step_mm=0``, its own empty cache, so both runs are cold), and the two Dice and times side
by side in results.json (``stride``) and results.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backends import backend_options, get_backend
from ..support import SupportSet
from ..volume import Volume

#: The backend option that sets the tracking step (mm); 0 tracks every slice.
STEP_OPTION = "track_step_mm"


def strides(name: str) -> bool:
    """Whether a backend tracks slices a stride at a time (it takes the step option)."""
    return STEP_OPTION in backend_options(name)


def stride_record(
    run_row: dict[str, Any],
    stride: int,
    image: Volume,
    reference: Volume,
    support: SupportSet,
    name: str,
    options: dict[str, Any],
    device: str,
    cache_dir: Path,
    evaluate: Callable,
) -> dict[str, Any] | None:
    """``run_row`` (a run of backend ``name`` that tracked every ``stride`` slices) against the same support
    tracked on every slice by ``evaluate`` (the bench's run), or None when that run failed."""
    if run_row.get("status") != "ok":
        return None
    backend = get_backend(name, **options | {STEP_OPTION: 0.0, "cache_dir": cache_dir})
    rows, _ = evaluate(image, reference, support, backend, device)
    every = next((r for r in rows if r["structure"] == run_row["structure"]), rows[0])
    if every.get("status") != "ok":
        return None
    return {
        "backend": name,
        "structure": run_row["structure"],
        "k": len(run_row["painted_slices"]),
        "slice_mm": float(image.spacing[support.axis]),
        "stride": stride,
        "dice": run_row["dice"],
        "dice_every_slice": every["dice"],
        "dice_cost": every["dice"] - run_row["dice"],
        "encoded_slices": run_row.get("encoded_slices"),
        "encoded_slices_every_slice": every.get("encoded_slices"),
        "cold_s": _cold(run_row),
        "cold_s_every_slice": _cold(every),
    }


def _cold(row: dict[str, Any]) -> float:
    return float(sum(row.get(key, 0.0) for key in ("embed_s", "adapt_s", "segment_s")))


def stride_line(record: dict[str, Any] | None) -> str:
    """The Markdown line for results.md (empty when no run strided)."""
    if not record:
        return ""
    return (
        f"Thin slices ({record['backend']}, {record['structure']} k={record['k']}, {record['slice_mm']:g} mm slices): "
        f"tracked every {record['stride']} slices, Dice **{record['dice']:.3f}** against "
        f"{record['dice_every_slice']:.3f} tracking every slice (cost {record['dice_cost']:+.3f}); "
        f"{record['encoded_slices']} slices encoded against {record['encoded_slices_every_slice']}, cold "
        f"{record['cold_s']:.0f} s against {record['cold_s_every_slice']:.0f} s.\n"
    )
