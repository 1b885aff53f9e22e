"""napari-fewshot3d: a few painted slices -> a 3D segmentation.

The engine is UI-free; napari, 3D Slicer and the `fewshot3d` CLI all call these same functions.
"""

from .engine import adapt, embed, load_model, resolve_device, run, save_model, segment
from .errors import Cancelled, InputError
from .progress import CancelToken, Task
from .support import SupportSet
from .version import __version__
from .volume import Volume
from .volume_io import read_image, read_labels, write_labels

__all__ = [
    "__version__",
    "Cancelled",
    "CancelToken",
    "InputError",
    "SupportSet",
    "Task",
    "Volume",
    "adapt",
    "embed",
    "load_model",
    "read_image",
    "read_labels",
    "resolve_device",
    "run",
    "save_model",
    "segment",
    "write_labels",
]
