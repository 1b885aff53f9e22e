"""Files that appear whole or not at all: written beside their destination, then renamed into place."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import InputError


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None], what: str) -> Path:
    """Call ``write(temporary path)``, then rename it to ``path``. A failure (or an interrupt) leaves no
    half-written file; an OS error becomes an InputError saying that ``what`` could not be written."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as exc:
        raise InputError(f"{path}: {what} could not be written ({exc.strerror or exc})") from None
    finally:
        partial.unlink(missing_ok=True)
    return path
