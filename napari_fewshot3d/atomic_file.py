"""Files that appear whole or not at all: written beside their destination, then renamed into place.

Every writer of the project (label volumes, model files, checkpoints) goes through :func:`write_atomically`, so a
failure, an interrupt or two writers at once never leave a half-written file where a user expects a finished one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import InputError


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None], what: str, suffix: str = "") -> Path:
    """Call ``write(temporary path)``, then rename it to ``path``.

    The temporary file lies in the destination's folder (so the rename is atomic), has a name of its own (two
    writers never share one) ending in ``suffix`` (writers that choose the format by extension need it), and gets
    the permissions a new file would. A failure or an interrupt removes it and leaves any previous file as it was;
    an OS error becomes an InputError saying that ``what`` could not be written."""
    path = Path(path)
    partial: Path | None = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".partial{suffix}")
        os.close(fd)
        partial = Path(name)
        write(partial)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)
        os.replace(partial, path)
        partial = None
    except OSError as exc:
        raise InputError(f"{path}: {what} could not be written ({exc.strerror or exc})") from None
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    return path
