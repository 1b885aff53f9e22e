"""Stable display colours per class value, shared by every front end and writer."""

from __future__ import annotations

# Distinct, colour-blind-friendly first (Okabe-Ito), then a few more.
_PALETTE = [
    (0.90, 0.62, 0.00),
    (0.34, 0.71, 0.91),
    (0.00, 0.62, 0.45),
    (0.94, 0.89, 0.26),
    (0.00, 0.45, 0.70),
    (0.84, 0.37, 0.00),
    (0.80, 0.47, 0.65),
    (0.60, 0.60, 0.60),
    (0.65, 0.34, 0.16),
    (0.40, 0.76, 0.65),
]


def class_color(value: int) -> tuple[float, float, float]:
    """RGB in [0, 1] for a label value (0 is background and has none)."""
    if value <= 0:
        raise ValueError("background (0) has no class colour")
    return _PALETTE[(value - 1) % len(_PALETTE)]
