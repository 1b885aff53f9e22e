"""One timed, scored run of the bench: a backend adapts to a support set and segments, cold then warm, then once
more after one correction; Dice and HD95 against the reference, time split by the encoder's clock, peak memory."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import engine
from ..backends import Backend
from ..errors import Cancelled, InputError
from ..support import SupportSet
from ..volume import Volume
from .metrics import PeakMemory, dice_score, score
from .protocol import one_correction


def timed_run(
    image: Volume, support: SupportSet, backend: Backend, device: str, stats: dict, reference: Volume | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """adapt → segment as a user gets it (cold on a case's first run: nothing cached, only the slices needed
    are encoded), then adapt → segment again with the embeddings cached (warm), then — given the reference —
    the correction loop: the worst unpainted slice is corrected to the reference and the model re-adapted
    (``readapt_s``, wall time including any new encoding). Returns the cold and the corrected predictions.

    Image-encoder time is measured where it happens and reported as ``embed_s``; ``adapt_s`` and
    ``segment_s`` are the rest of each step. Timings land in ``stats`` as they are taken, so a run that fails
    halfway still reports what it measured.
    """
    clock = backend.encoder_clock
    memory = PeakMemory(device)
    with memory:
        lap_start, encoded = time.perf_counter(), clock.seconds
        stats["embed_s"] = 0.0

        def lap(name: str, count_encoding: bool = True) -> None:
            nonlocal lap_start, encoded
            now, encoding = time.perf_counter(), clock.seconds - encoded
            stats[name] = now - lap_start - encoding
            if count_encoding:
                stats["embed_s"] += encoding
            lap_start, encoded = now, clock.seconds

        try:
            slices_before = clock.slices
            model = engine.adapt(image, support, backend, device)
            lap("adapt_s")
            cold = engine.segment(model, image, support, device).array
            lap("segment_s")
            stats["encoded_slices"] = clock.slices - slices_before
            model = engine.adapt(image, support, backend, device)
            lap("adapt_warm_s", count_encoding=False)
            warm = engine.segment(model, image, support, device).array
            lap("segment_warm_s", count_encoding=False)
            corrected = None
            corrected_support = one_correction(support, cold, reference) if reference is not None else None
            if corrected_support is not None:
                added = set(corrected_support.painted_slices()) - set(support.painted_slices())
                stats["corrected_slices"] = sorted(added)
                started = time.perf_counter()
                model = engine.adapt(image, corrected_support, backend, device)
                corrected = engine.segment(model, image, corrected_support, device).array
                stats["readapt_s"] = time.perf_counter() - started
                lap("readapt_rest_s", count_encoding=False)
        finally:
            stats["rss_method"] = memory.method
    stats.update(rss_start_mib=memory.start_rss_mib, peak_rss_mib=memory.peak_rss_mib)
    stats.update(peak_cuda_mib=memory.peak_cuda_mib, warm_matches_cold=bool(np.array_equal(cold, warm)))
    return cold, corrected


def evaluate_run(image: Volume, reference: Volume, support: SupportSet, backend: Backend, device: str) -> tuple:
    """One backend on one support set, scored per painted structure; a failure becomes rows with its error."""
    classes = [(c.name, c.value, c.slices) for c in support.classes]
    stats: dict[str, Any] = {}
    try:
        prediction, corrected = timed_run(image, support, backend, device, stats, reference)
    except Cancelled:
        raise
    except Exception as exc:  # a failed run is a result (k below a backend's minimum, a bug, out of memory)
        error = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        failed = {"status": "failed", "error": error} | stats
        return [{"structure": n, "label_value": v, "painted_slices": list(s)} | failed for n, v, s in classes], None
    painted = support.painted_slices()
    rows = []
    for name, value, slices in classes:
        scores = score(prediction == value, reference.array == value, painted, support.axis, image.spacing)
        if corrected is not None:
            scores["dice_corrected"] = dice_score(corrected == value, reference.array == value)
        row = {"structure": name, "label_value": value, "painted_slices": list(slices), "status": "ok", "error": None}
        rows.append(row | scores | stats)
    return rows, prediction
