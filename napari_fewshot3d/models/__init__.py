"""Neural network models used by the backends: our TinyViT, and SAM-family models behind one interface."""

from .sam import (
    SamModel,
    build_litemedsam_parts,
    litemedsam_checkpoint,
    load_litemedsam,
    load_sam_checkpoint,
    segment_anything_modules,
)
from .tiny_vit import TinyViT

__all__ = [
    "SamModel",
    "TinyViT",
    "build_litemedsam_parts",
    "litemedsam_checkpoint",
    "load_litemedsam",
    "load_sam_checkpoint",
    "segment_anything_modules",
]
