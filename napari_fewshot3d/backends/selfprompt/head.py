"""The self-prompt head: a per-class linear classifier on frozen SAM embedding cells.

Each 64x64 embedding cell of a painted slice is a training sample: positive where the class
covers the cell, negative where it is absent (cells the class only partly covers are left out,
their label is ambiguous). Classes are one-vs-rest, each with its own negatives (its painted
slices plus the declared empty ones), class-balanced, and strongly regularised (C=0.1 measured
more robust than C=1 with a few slices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CellHead:
    """Standardisation + one linear classifier per class value, as plain arrays (saveable)."""

    values: list[int]
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    weights: np.ndarray  # (C, D)
    bias: np.ndarray  # (C,)

    def predict(self, embedding: np.ndarray) -> np.ndarray:
        """Per-class probability for each cell of one slice embedding (D, H, W) -> (C, H, W)."""
        d, h, w = embedding.shape
        cells = (embedding.reshape(d, -1).T.astype(np.float32) - self.mean) / self.scale
        logits = cells @ self.weights.T + self.bias
        return (1.0 / (1.0 + np.exp(-logits))).T.reshape(len(self.values), h, w)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "head_values": np.asarray(self.values, np.int64),
            "head_mean": self.mean,
            "head_scale": self.scale,
            "head_weights": self.weights,
            "head_bias": self.bias,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CellHead:
        return cls(
            [int(v) for v in arrays["head_values"]],
            arrays["head_mean"].astype(np.float32),
            arrays["head_scale"].astype(np.float32),
            arrays["head_weights"].astype(np.float32),
            arrays["head_bias"].astype(np.float32),
        )


def cell_samples(embedding: np.ndarray, coverage: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features and 0/1 targets of the unambiguous, in-image cells of one slice.

    ``coverage`` is the fraction (0..1) of each cell covered by the class, ``valid`` marks cells
    that show image rather than letterbox padding.
    """
    positive = coverage >= 0.5
    negative = coverage == 0
    keep = valid & (positive | negative)
    features = embedding[:, keep].T.astype(np.float32)
    return features, positive[keep].astype(np.int8)


def fit_head(
    samples: dict[int, list[tuple[np.ndarray, np.ndarray]]],
    regularisation: float = 0.1,
    start: CellHead | None = None,
) -> CellHead:
    """Fit one balanced logistic regression per class from its (features, targets) slice samples.

    ``start``: a head fitted on similar samples (the same classes with one slice more or less) to start
    the solver from; it converges to the same optimum in a fraction of the iterations.
    """
    from sklearn.linear_model import LogisticRegression

    values = sorted(samples)
    all_features = np.concatenate([f for value in values for f, _ in samples[value]])
    mean = all_features.mean(axis=0)
    scale = all_features.std(axis=0) + 1e-6
    weights, biases = [], []
    for value in values:
        features = np.concatenate([f for f, _ in samples[value]])
        targets = np.concatenate([t for _, t in samples[value]])
        if targets.min() == targets.max():
            # Only one kind of cell (a structure filling every painted cell, or none): a constant answer.
            weights.append(np.zeros(features.shape[1], np.float32))
            biases.append(8.0 if targets[0] else -8.0)
            continue
        model = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=500)
        if start is not None and value in start.values:
            model.set_params(warm_start=True)
            model.coef_, model.intercept_ = _restandardised(start, value, mean, scale)
        model.fit((features - mean) / scale, targets)
        weights.append(model.coef_[0].astype(np.float32))
        biases.append(float(model.intercept_[0]))
    return CellHead(
        values, mean.astype(np.float32), scale.astype(np.float32), np.stack(weights), np.array(biases, np.float32)
    )


def _restandardised(head: CellHead, value: int, mean: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One class's linear function of ``head``, expressed on features standardised by (mean, scale) instead."""
    row = head.values.index(value)
    raw = head.weights[row].astype(np.float64) / head.scale  # weights on unstandardised features
    bias = head.bias[row] - raw @ head.mean + raw @ mean
    return (raw * scale)[None], np.array([bias])
