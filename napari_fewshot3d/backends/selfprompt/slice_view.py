"""A slice as a SAM-family model takes it: in radiological view, letterboxed into its square input.

Models take a square S×S input. :class:`Letterbox` resizes a slice so that its longest
*physical* side becomes S (so anisotropic pixels, e.g. 3 mm × 0.98 mm in a sagittal slice of an axial
scan, are not squashed), pads bottom/right, and maps boxes and masks both ways. Given a fixed physical
pixel size instead (``pixel_mm``), an organ has the same size in the model input on every scan; a field of
view too wide for it is cut to a ``window`` of the slice (outside it, masks are empty). Pixel (r, c) covers
[r, r+1) × [c, c+1) in continuous coordinates; resizing maps those extents exactly (half-pixel centres,
``align_corners=False``), so going to the model and back lands on the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...volume import world_axis_of_array_axes


def _resize(images: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize the last two axes with half-pixel centres; antialiased when shrinking (like an area filter)."""
    arr = np.asarray(images, dtype=np.float32)
    lead = arr.shape[:-2]
    if tuple(arr.shape[-2:]) == tuple(size):
        return arr.copy()
    t = torch.from_numpy(np.ascontiguousarray(arr.reshape(-1, 1, *arr.shape[-2:])))
    if mode == "nearest":
        out = F.interpolate(t, size=size, mode="nearest-exact")
    else:
        shrinking = size[0] < arr.shape[-2] or size[1] < arr.shape[-1]
        out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    return out.numpy().reshape(*lead, *size)


@dataclass(frozen=True)
class Letterbox:
    """Aspect-preserving map between a (h, w) slice and an S×S model input, padded bottom/right.

    ``spacing`` is the in-plane pixel size (row, column) in mm; with it the content keeps its physical
    aspect ratio. Boxes are (x0, y0, x1, y1) with x along columns, y along rows, both inclusive pixel
    indices (the bounding box of a mask), as SAM-family models expect.
    """

    shape: tuple[int, int]
    size: int
    spacing: tuple[float, float] = (1.0, 1.0)
    #: Fixed mm per model pixel; 0: the longest physical side of the slice (or window) fills the input.
    pixel_mm: float = 0.0
    #: The part of the slice that is shown, (row0, row1, col0, col1) half-open; None: all of it.
    window: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        h, w = (int(n) for n in self.shape)
        if h < 1 or w < 1 or self.size < 1:
            raise ValueError(f"empty slice {self.shape} or model size {self.size}")
        if min(self.spacing) <= 0:
            raise ValueError(f"in-plane spacing must be positive, got {self.spacing}")
        object.__setattr__(self, "shape", (h, w))
        object.__setattr__(self, "spacing", (float(self.spacing[0]), float(self.spacing[1])))
        window = (0, h, 0, w) if self.window is None else tuple(int(v) for v in self.window)
        if not (0 <= window[0] < window[1] <= h and 0 <= window[2] < window[3] <= w):
            raise ValueError(f"window {self.window} is not inside a slice of {self.shape}")
        object.__setattr__(self, "window", None if window == (0, h, 0, w) else window)

    @property
    def region(self) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1) of the slice that the model sees."""
        return self.window or (0, self.shape[0], 0, self.shape[1])

    @property
    def region_shape(self) -> tuple[int, int]:
        r0, r1, c0, c1 = self.region
        return r1 - r0, c1 - c0

    @property
    def content_shape(self) -> tuple[int, int]:
        """(rows, cols) the slice occupies in the model input: the longest physical side becomes ``size``, or each
        side its extent at ``pixel_mm``."""
        h, w = self.region_shape
        extent_h, extent_w = h * self.spacing[0], w * self.spacing[1]
        factor = 1.0 / self.pixel_mm if self.pixel_mm > 0 else self.size / max(extent_h, extent_w)
        rows = min(self.size, max(1, int(extent_h * factor + 0.5)))
        cols = min(self.size, max(1, int(extent_w * factor + 0.5)))
        return rows, cols

    @property
    def mm_per_pixel(self) -> float:
        """The physical size of one model pixel (mean of rows and columns): what a saved model records."""
        fy, fx = self.scale
        return 0.5 * (self.spacing[0] / fy + self.spacing[1] / fx)

    @property
    def scale(self) -> tuple[float, float]:
        """Model pixels per slice pixel along rows and columns (exact ratio of the integer sizes)."""
        rows, cols = self.content_shape
        h, w = self.region_shape
        return rows / h, cols / w

    def to_model(self, image: np.ndarray, mode: str = "bilinear", pad_value: float = 0.0) -> np.ndarray:
        """(…, h, w) slice(s) → (…, S, S): resize to :attr:`content_shape`, pad bottom/right with ``pad_value``.

        ``mode`` "nearest" keeps label values (for masks); "bilinear" for intensities and probabilities.
        """
        image = np.asarray(image)
        if tuple(image.shape[-2:]) != self.shape:
            raise ValueError(f"slice shape {image.shape[-2:]} differs from the letterbox's {self.shape}")
        rows, cols = self.content_shape
        r0, r1, c0, c1 = self.region
        resized = _resize(image[..., r0:r1, c0:c1], (rows, cols), mode)
        out = np.full((*image.shape[:-2], self.size, self.size), pad_value, np.float32)
        out[..., :rows, :cols] = resized
        return out

    def mask_to_slice(self, mask: np.ndarray) -> np.ndarray:
        """(…, S, S) model-resolution logits/probabilities → (…, h, w): crop the padding, resize back (bilinear).

        The caller thresholds (logits at 0, probabilities at 0.5); resizing soft values keeps edges sub-pixel.
        """
        mask = np.asarray(mask)
        if tuple(mask.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"mask shape {mask.shape[-2:]} is not the model's {(self.size, self.size)}")
        rows, cols = self.content_shape
        resized = _resize(mask[..., :rows, :cols], self.region_shape, "bilinear")
        if self.window is None:
            return resized
        r0, r1, c0, c1 = self.window
        out = np.zeros((*mask.shape[:-2], *self.shape), np.float32)  # unseen: probability 0, logit 0 (background)
        out[..., r0:r1, c0:c1] = resized
        return out

    def box_to_model(self, box: np.ndarray) -> np.ndarray:
        """Inclusive slice-pixel boxes (…, 4) → inclusive model-pixel boxes covering the same area (float)."""
        box = np.asarray(box, dtype=np.float64)
        fy, fx = self.scale
        factor = np.array([fx, fy, fx, fy])
        r0, _, c0, _ = self.region
        # Pixel extents [x0, x1 + 1) scale exactly; the inclusive upper index is the extent's end minus one.
        return (box - [c0, r0, c0, r0] + [0, 0, 1, 1]) * factor - [0, 0, 1, 1]

    def box_to_slice(self, box: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`box_to_model`."""
        box = np.asarray(box, dtype=np.float64)
        fy, fx = self.scale
        factor = np.array([fx, fy, fx, fy])
        r0, _, c0, _ = self.region
        return (box + [0, 0, 1, 1]) / factor - [0, 0, 1, 1] + [c0, r0, c0, r0]


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Inclusive bounding box (x0, y0, x1, y1) of a 2D mask (x = column, y = row), or None when empty."""
    rows = np.flatnonzero(np.any(mask, axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(np.any(mask, axis=0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float64)


@dataclass(frozen=True)
class SliceView:
    """How to turn an array slice into the view a radiologist reads, and back (a transpose and flips, exact).

    Radiological convention: axial slices anterior up and patient's right on the left of the screen;
    coronal superior up, right on the left; sagittal superior up, anterior on the left. SAM-family models
    were trained on images shown this way, and segment noticeably better in it than in raw array order.
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @classmethod
    def radiological(cls, affine: np.ndarray, axis: int) -> SliceView:
        """The view for slices perpendicular to array ``axis`` of a volume with voxel-to-RAS ``affine``."""

        world = world_axis_of_array_axes(np.asarray(affine, float))
        a0, a1 = (a for a in range(3) if a != axis)  # the slice's array axes, in order
        transpose = bool(world[a0] < world[a1])  # rows: the higher world axis (A over R, S over R/A)
        row_axis, col_axis = (a1, a0) if transpose else (a0, a1)
        # Both run toward decreasing RAS: down = posterior/inferior, right on screen = patient's left/posterior.
        flip_rows = bool(affine[world[row_axis], row_axis] > 0)
        flip_cols = bool(affine[world[col_axis], col_axis] > 0)
        return cls(transpose, flip_rows, flip_cols)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Array slice (…, a, b) → view (…, rows, cols)."""
        out = np.swapaxes(image, -1, -2) if self.transpose else np.asarray(image)
        if self.flip_rows:
            out = out[..., ::-1, :]
        if self.flip_cols:
            out = out[..., :, ::-1]
        return out

    def invert(self, view: np.ndarray) -> np.ndarray:
        """View (…, rows, cols) → array slice (…, a, b); the exact inverse of :meth:`apply`."""
        out = np.asarray(view)
        if self.flip_rows:
            out = out[..., ::-1, :]
        if self.flip_cols:
            out = out[..., :, ::-1]
        return np.swapaxes(out, -1, -2) if self.transpose else out

    def spacing(self, spacing: tuple[float, float]) -> tuple[float, float]:
        """In-plane spacing (a, b) of the array slice → (rows, cols) of the view."""
        return (spacing[1], spacing[0]) if self.transpose else (spacing[0], spacing[1])


#: A scan whose slices, filling the model input, come within this fraction of the wanted pixel size is shown that
#: way: the model then sees the scan it was adapted on exactly as it did then (same embeddings, same cache).
PIXEL_TOLERANCE = 0.05


def letterbox_at(
    shape: tuple[int, int],
    size: int,
    spacing: tuple[float, float],
    pixel_mm: float,
    body: np.ndarray | None = None,
) -> Letterbox:
    """A letterbox that shows slices at ``pixel_mm`` mm per model pixel (0: filling the input).

    A slice wider than the input can show at that size is cut to a window centred on ``body`` (a 2D mask of
    where the patient is, in the slice's view), so that an organ keeps the size it had when the model was
    adapted instead of shrinking with a bigger field of view."""
    fill = Letterbox(shape, size, spacing)
    if pixel_mm <= 0 or abs(fill.mm_per_pixel / pixel_mm - 1.0) <= PIXEL_TOLERANCE:
        return fill
    window = [0, shape[0], 0, shape[1]]
    for axis in (0, 1):
        span = int(np.floor(size * pixel_mm / spacing[axis]))
        if shape[axis] <= span:
            continue
        inside = np.flatnonzero(body.any(axis=1 - axis)) if body is not None else np.empty(0, int)
        centre = 0.5 * (inside[0] + inside[-1] + 1) if inside.size else 0.5 * shape[axis]
        start = int(np.clip(round(centre - span / 2), 0, shape[axis] - span))
        window[2 * axis : 2 * axis + 2] = start, start + span
    return Letterbox(shape, size, spacing, pixel_mm, tuple(window))  # type: ignore[arg-type]
