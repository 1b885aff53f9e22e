"""SAM-family models for the self-prompt backend: our TinyViT, and SAM models behind one small interface."""

from .model import (
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
