"""Swin-UNETR fine-tuned on the painted slices: for users with a GPU, and for structures that a frozen
slice encoder handles badly.

adapt: start from random weights, the public MONAI self-supervised encoder or a ``fewshot3d pretrain``
checkpoint; fine-tune on patches drawn around the painted slices with a loss that only the known slices
of each class can move. segment: sliding-window inference over the whole volume, one sigmoid per class.
The adapted model keeps the whole network, so it applies to other volumes of the same modality.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from ...progress import Task
from ...support import SupportSet
from ...volume import Volume
from ..base import AdaptedModel, Backend


class SwinUnetrBackend(Backend):
    name = "swin-unetr"
    description = "MONAI Swin-UNETR fine-tuned on the painted slices (GPU; a short, small schedule on CPU)"
    min_slices_per_class = 1
    can_save = True

    def __init__(
        self,
        weights: str | None = None,
        feature_size: int | None = None,
        max_steps: int | None = None,
        max_seconds: float | None = None,
        patch: tuple[int, int, int] | None = None,
        seed: int = 0,
    ) -> None:
        """Options left at None take the device's schedule (see :mod:`napari_fewshot3d.backends.swin.network`);
        ``weights`` sets the feature size unless it is given, and must then agree with it."""
        super().__init__()
        from .network import CPU_SCHEDULE
        from .weights import read_checkpoint

        self.checkpoint = read_checkpoint(weights) if weights else None
        if self.checkpoint and feature_size is not None and feature_size != self.checkpoint.feature_size:
            raise InputError(
                f"{weights} holds a network of feature size {self.checkpoint.feature_size}, "
                f"not {feature_size}: leave the feature size out to take the checkpoint's"
            )
        self.options = {
            "feature_size": self.checkpoint.feature_size if self.checkpoint else feature_size,
            "max_steps": max_steps,
            "max_seconds": max_seconds,
            "patch": patch,
        }
        CPU_SCHEDULE.with_options(**self.options)  # refuse bad options now, before any work
        self.seed = int(seed)

    def adapt(self, volume: Volume, support: SupportSet, device: str, task: Task) -> AdaptedModel:
        import torch

        from .network import build_network, schedule_for
        from .resolution import coarse_factors
        from .sampling import PatchSampler, array_patch, augmenter, modality_of, normalise
        from .training import fine_tune
        from .weights import load_into

        schedule = schedule_for(device).with_options(**self.options)
        torch.manual_seed(self.seed)
        network = build_network(len(support.classes), schedule.feature_size)
        if self.checkpoint is not None:
            report = load_into(network, self.checkpoint)
            task.report(0.0, report.summary())
        else:
            report = None
            task.report(0.0, "no weights given: training Swin-UNETR from scratch")
        network.to(device)
        modality = modality_of(volume.array)
        image = normalise(volume.array, modality)
        factors = coarse_factors(volume.spacing, support.axis, schedule.coarse_mm)
        sampler = PatchSampler.build(image, support, schedule.patch, self.seed, factors)
        log = fine_tune(network, sampler, schedule, device, task, augmenter(support.axis, self.seed))
        task.report(1.0, f"fine-tuned: {log.steps} steps in {log.seconds:.0f} s ({log.stopped_by.replace('_', ' ')})")
        return SwinUnetrModel(
            network,
            support.values,
            support.class_names,
            modality,
            schedule.feature_size,
            {
                "roi": list(array_patch(schedule.infer_roi, support.axis)),
                "batch": schedule.infer_batch,
                "overlap": schedule.infer_overlap,
                "axis": support.axis,
                "coarse_mm": schedule.coarse_mm,
            },
            {"training": log.as_dict(), "weights": report.as_dict() if report else None},
            support,
        )

    def from_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> AdaptedModel:
        import torch

        from .network import build_network

        try:
            values = [int(v) for v in meta["values"]]
            network = build_network(len(values), int(meta["feature_size"]))
            state = {k.removeprefix("net."): torch.from_numpy(a) for k, a in arrays.items() if k.startswith("net.")}
            network.load_state_dict(state)
            return SwinUnetrModel(
                network, values, {}, meta["modality"], int(meta["feature_size"]), meta["inference"], meta["record"]
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"not a usable swin-unetr model ({type(exc).__name__}: {exc})") from None


class SwinUnetrModel(AdaptedModel):
    """The fine-tuned network, its classes and how it normalises; applying is a pure function of this."""

    backend_name = SwinUnetrBackend.name

    def __init__(
        self,
        network: Any,
        values: list[int],
        class_names: dict[int, str],
        modality: str,
        feature_size: int,
        inference: dict[str, Any],
        record: dict[str, Any],
        support: SupportSet | None = None,
    ) -> None:
        self.network, self.values, self.class_names = network, list(values), class_names
        self.modality, self.feature_size, self.inference = modality, feature_size, dict(inference)
        self.record = record  # training log and the weight report, kept for the user and saved
        self.support = support  # where the structures are on the painted volume; never saved

    def segment(self, volume: Volume, device: str, task: Task) -> np.ndarray:
        from .inference import connected_to_painting, predict_probabilities, to_labels
        from .resolution import coarse_factors, coarsen, refine
        from .sampling import normalise

        self.network.to(device)
        # Models saved before coarse training existed carry neither key: they ran on the volume's own grid.
        axis, coarse_mm = int(self.inference.get("axis", 2)), float(self.inference.get("coarse_mm", 0.0))
        factors = coarse_factors(volume.spacing, axis, coarse_mm)
        image = coarsen(normalise(volume.array, self.modality), factors)
        roi = tuple(int(s) for s in self.inference["roi"])
        probabilities = predict_probabilities(
            self.network, image, roi, int(self.inference["batch"]), float(self.inference["overlap"]), device, task
        )
        labels = to_labels(refine(probabilities, factors, volume.shape), self.values)
        if self.support is not None and self.support.labels.same_grid(volume):
            labels = connected_to_painting(labels, self.support.labels.array, self.values)
        return labels

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "values": self.values,
            "modality": self.modality,
            "feature_size": self.feature_size,
            "inference": self.inference,
            "record": self.record,
        }
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        return meta, arrays
