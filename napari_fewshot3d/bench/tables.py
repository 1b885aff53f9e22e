"""The bench report's building blocks: rows selected, averaged and paired against a peer, and the Dice table."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean
from typing import Any

BASELINE = "interpolate"
#: Run beside the chosen backends in every bench: Fill between slices (the baseline) and the classic pixel
#: classifier (ilastik's recipe), the two things a user could do instead. Every table shows gains over each.
PEERS = (BASELINE, "pixel-classifier")
NOT_AVAILABLE = "—"


def _backends(results: dict[str, Any]) -> list[str]:
    return list(results["config"]["backends"])


def _ks(rows: Sequence[dict]) -> list[int]:
    return sorted({r["k"] for r in rows})


def _select(rows: Sequence[dict], backend: str, k: int | None = None, slices: str = "protocol") -> list[dict]:
    return [r for r in rows if r["backend"] == backend and r["slices"] == slices and (k is None or r["k"] == k)]


def _pair_key(row: dict) -> tuple:
    return row["case"], row["structure"], row["k"], row["slices"], row["seed"]


def mean_metric(rows: Sequence[dict], backend: str, k: int, metric: str, slices: str = "protocol") -> tuple:
    """(mean over case × structure of the runs that succeeded, how many succeeded, how many there were)."""
    chosen = _select(rows, backend, k, slices)
    values = [r[metric] for r in chosen if r["status"] == "ok" and r.get(metric) is not None]
    return (mean(values) if values else None), len(values), len(chosen)


def mean_gain(
    rows: Sequence[dict], backend: str, k: int, metric: str, slices: str = "protocol", base: str = BASELINE
) -> float | None:
    """Mean of (backend − ``base``) over the case × structure pairs where both succeeded."""
    reference = {_pair_key(r): r.get(metric) for r in _select(rows, base, k, slices) if r["status"] == "ok"}
    gains = [
        r[metric] - reference[_pair_key(r)]
        for r in _select(rows, backend, k, slices)
        if r["status"] == "ok" and r.get(metric) is not None and reference.get(_pair_key(r)) is not None
    ]
    return mean(gains) if gains else None


def _peers(results: dict[str, Any]) -> list[str]:
    return [b for b in PEERS if b in _backends(results)]


def _num(value: float | None, digits: int = 3) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.{digits}f}"


def _mean_cell(value: float | None, ok: int, total: int) -> str:
    if value is None:
        return NOT_AVAILABLE
    return _num(value) if ok == total else f"{value:.3f} ({ok}/{total})"


def dice_table(results: dict[str, Any], metric: str = "dice", slices: str = "protocol") -> str:
    """Per backend: mean Dice per k, and the mean gain over each peer at the same k."""
    rows = [r for r in results["rows"] if r["slices"] == slices]
    ks = _ks(rows)
    peers = _peers(results)
    header = ["backend", *(f"k={k}" for k in ks), *(f"gain vs {peer} k={k}" for peer in peers for k in ks)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for backend in _backends(results):
        cells = [_mean_cell(*mean_metric(rows, backend, k, metric, slices)) for k in ks]
        for peer in peers:
            if backend == peer:
                cells += ["baseline" if peer == BASELINE else "peer"] * len(ks)
            else:
                cells += [_signed(mean_gain(rows, backend, k, metric, slices, peer)) for k in ks]
        lines.append("| " + " | ".join([backend, *cells]) + " |")
    return "\n".join(lines)


def _signed(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:+.3f}"
