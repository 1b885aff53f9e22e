"""Self-prompting SAM: a light head on frozen SAM embeddings finds the structure on every slice,
its boxes prompt SAM's mask decoder for the refined outline.

adapt: encode the painted slices, fit the per-class head, and decide per class — from the
painted slices themselves, held out one at a time — whether SAM's refinement beats the coarse
mask. segment: track each class outward from its painted slices (encoding only the slices the
structure reaches), refine where it helps, resolve overlaps by the head's confidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...preprocess import modality_of
from ...progress import Task
from ...support import SupportSet
from ...volume import Volume
from ..base import AdaptedModel, Backend, Focus
from .adapted import NAME, SelfPromptModel, Transfer
from .cache import EmbeddingCache
from .candidates import ClassProfile
from .embedder import SliceEmbedder
from .head import CellHead, fit_head
from .held_out import held_out_choices
from .intensity_prior import IntensityPrior, surroundings
from .outline import TRACK_STEP_MM, growth_px, in_plane_spacing, track_stride
from .self_training import slice_samples

#: Width (mm) of the ring around a painted structure whose intensities stand for "not the structure".
SURROUNDINGS_MM = 15.0


class SelfPromptSamBackend(Backend):
    """One instance per front end session: it owns the loaded SAM weights and the embedding cache, so that every
    round of adapting and segmenting (and every model it adapted or loaded) reuses what was encoded."""

    name = NAME
    description = "LiteMedSAM embeddings + per-class head, refined by SAM's decoder where it helps"
    min_slices_per_class = 1
    can_save = True

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        window: dict | None = None,
        cache_dir: str | Path | None = None,
        track_step_mm: float = TRACK_STEP_MM,
    ) -> None:
        super().__init__()
        #: Slices thinner than this are tracked a stride at a time (outline.track_stride); 0: every slice.
        self.track_step_mm = float(track_step_mm)
        self.checkpoint = checkpoint
        self.model_type = model_type
        self.window = dict(window or {})
        self.cache = EmbeddingCache(Path(cache_dir) if cache_dir else None)
        self._sams: dict[tuple[str, str, str, str], Any] = {}
        self._last_embedder: tuple[tuple, SliceEmbedder] | None = None

    def sam(
        self,
        device: str,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        precision: str | None = None,
        runtime: str | None = None,
    ):
        """The SAM model for a device at ``precision`` on ``runtime`` (defaults: what $FEWSHOT3D_PRECISION and
        $FEWSHOT3D_RUNTIME ask for), loaded once per backend (39 MB of weights for LiteMedSAM)."""
        from .sam.model import load_litemedsam, load_sam_checkpoint
        from .sam.openvino_encoder import runtime_from_env
        from .sam.precision import precision_from_env

        precision = precision or precision_from_env()
        runtime = runtime or runtime_from_env()
        key = (checkpoint or "litemedsam", device, precision, runtime)
        if key not in self._sams:
            self._sams[key] = (
                load_sam_checkpoint(checkpoint, model_type, device, precision, runtime=runtime)
                if checkpoint
                else load_litemedsam(device, precision, runtime)
            )
        return self._sams[key]

    def embedder(
        self,
        volume: Volume,
        axis: int,
        device: str,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        window: dict | None = None,
        pixel_mm: float = 0.0,
    ) -> SliceEmbedder:
        """The slices of ``volume`` along ``axis`` as the named SAM sees them, through this backend's cache; with
        ``pixel_mm``, at that physical size per model pixel (a saved model on another scan). The last one is kept:
        every adapt and segment on the same image asks again, and each would window the whole volume anew."""
        sam = self.sam(device, checkpoint, model_type)
        window_key = repr(sorted((window or {}).items()))
        key = (volume.fingerprint(), axis, id(sam), sam.runtime, window_key, float(pixel_mm))  # runtime: may fall back
        if self._last_embedder is None or self._last_embedder[0] != key:
            self._last_embedder = None  # the previous image's windowed copy goes before the next one is made
            batch = 8 if device == "cuda" else 1
            embedder = SliceEmbedder(
                sam, volume, axis, self.cache, window, batch_size=batch, clock=self.encoder_clock, pixel_mm=pixel_mm
            )
            self._last_embedder = (key, embedder)
        return self._last_embedder[1]

    def encoder_check(self, volume: Volume, labels: np.ndarray, axis: int, device: str, slices: int = 4) -> dict:
        from .encoder_check import REFERENCE, against_fp32

        used = self.sam(device, self.checkpoint, self.model_type)
        reference = self.sam(device, self.checkpoint, self.model_type, precision=REFERENCE, runtime="torch")
        return against_fp32(used, reference, self.window, volume, labels, axis, slices)

    def slice_stride(self, volume: Volume, axis: int) -> int:
        return track_stride(volume, axis, self.track_step_mm)

    def _own_embedder(self, volume: Volume, axis: int, device: str) -> SliceEmbedder:
        return self.embedder(volume, axis, device, self.checkpoint, self.model_type, self.window)

    def embed(self, volume: Volume, device: str, task: Task, axis: int, focus: Focus | None = None) -> None:
        embedder = self._own_embedder(volume, axis, device)
        pending = embedder.cache.missing(embedder.key, list(range(embedder.n_slices)))
        total = len(pending)
        while pending:
            centre = focus() if focus is not None else None
            if centre is not None:  # nearest the slice in view first, asked again before each batch
                pending.sort(key=lambda i: (abs(i - centre), i))
            batch, pending = pending[: embedder.batch_size], pending[embedder.batch_size :]
            task.report((total - len(pending) - len(batch)) / total, f"encoding slice {total - len(pending)}/{total}")
            embedder.get(batch)  # the batch in hand is finished; a cancel stops at the next report
        task.report(1.0, "slices encoded")

    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        embedder = self._own_embedder(volume, support.axis, device)
        painted = list(support.painted_slices())
        embeddings = embedder.get(painted, task.sub(0.0, 0.8))
        task.report(0.85, "fitting the head")
        samples = slice_samples(embedder, support, embeddings)
        head = fit_head({v: list(s.values()) for v, s in samples.items()})
        priors = {c.value: intensity_prior(embedder, support, c.value) for c in support.classes}
        task.report(0.9, "choosing refinement per class")
        growth = growth_px(volume, support.axis, embedder)
        spacing = in_plane_spacing(volume, support.axis)
        stride = track_stride(volume, support.axis, self.track_step_mm)
        choices = {
            c.value: held_out_choices(
                embedder, support, samples, c.value, embeddings, growth, spacing, head, task=task, stride=stride
            )
            for c in support.classes
        }
        task.report(1.0, "adapted")
        return SelfPromptModel(
            head,
            {value: refine for value, (refine, _) in choices.items()},
            priors,
            support.axis,
            support.class_names,
            self.window,
            self.checkpoint,
            self.model_type,
            self,
            support,
            {value: fusion for value, (_, fusion) in choices.items()},
            transfer_of(volume, embedder, support, self.window),
        )

    def from_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> AdaptedModel:
        head = CellHead.from_arrays(arrays)
        refine = {int(k): bool(v) for k, v in meta["refine"].items()}
        priors = {v: IntensityPrior(arrays[f"prior_{v}"]) for v in head.values}
        return SelfPromptModel(
            head,
            refine,
            priors,
            meta["axis"],
            {},
            meta.get("window", {}),
            meta.get("checkpoint"),
            meta.get("model_type", "vit_b"),
            self,
            fusion={int(k): str(v) for k, v in meta.get("fusion", {}).items()},
            transfer=Transfer.from_json(meta),
        )


def intensity_prior(embedder: SliceEmbedder, support: SupportSet, value: int) -> IntensityPrior:
    """Intensities of the painted structure against those of the ring around it, on its painted slices."""
    radius = SURROUNDINGS_MM / float(np.mean(embedder.letterbox.spacing))
    inside, around = [], []
    for index in support.get(value).slices:
        mask = support.slice_of(support.labels.array, index) == value
        image = embedder.image_slice(index)
        inside.append(image[mask])
        around.append(image[surroundings(mask, radius)])
    return IntensityPrior.fit(np.concatenate(inside), np.concatenate(around))


def transfer_of(volume: Volume, embedder: SliceEmbedder, support: SupportSet, window: dict) -> Transfer:
    """What applying the model to other scans needs: the physical pixel size the slices were seen at, the
    modality, and what each class looked like on its painted slices."""
    pixel_area = float(np.prod(in_plane_spacing(volume, support.axis)))
    profiles = {}
    for cls in support.classes:
        masks = [support.slice_of(support.labels.array, i) == cls.value for i in cls.slices]
        profiles[cls.value] = ClassProfile.of(masks, [embedder.image_slice(i) for i in cls.slices], pixel_area)
    return Transfer(embedder.letterbox.mm_per_pixel, modality_of(volume.array, window), profiles)
