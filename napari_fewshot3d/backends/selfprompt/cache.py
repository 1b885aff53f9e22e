"""Slice embeddings cached per (volume content, model, preprocessing, axis), in memory and on disk.

Encoding a slice is the expensive step (~1 s on a laptop CPU); everything after it is cheap.
So each slice is encoded once, kept in memory for the session, and stored on disk (float16) in
the user cache folder so that re-opening the same image is instant. Slices are added one at a
time, which lets a backend encode only the slices it needs, in the order it needs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

CACHE_ENV = "FEWSHOT3D_CACHE_DIR"


def default_cache_dir() -> Path:
    """$FEWSHOT3D_CACHE_DIR, else the platform's user cache folder (XDG on Linux)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return user_cache_root() / "embeddings"


def user_cache_root() -> Path:
    """The project's folder in the platform's user cache (XDG on Linux)."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "napari-fewshot3d"


def content_key(array: np.ndarray, **settings: object) -> str:
    """A key that changes whenever the voxels or any setting that shapes the embedding change."""
    digest = hashlib.sha256()
    digest.update(str((array.shape, str(array.dtype))).encode())
    digest.update(np.ascontiguousarray(array).data)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


class EmbeddingCache:
    """Per-key slice store: ``get``/``put`` one slice, memory first, then disk."""

    def __init__(self, folder: Path | None = None, memory_volumes: int = 2, use_disk: bool = True) -> None:
        self.folder = folder or default_cache_dir()
        self.memory_volumes = memory_volumes
        self.use_disk = use_disk
        self._memory: OrderedDict[str, dict[int, np.ndarray]] = OrderedDict()
        self._decoded: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _slices(self, key: str) -> dict[int, np.ndarray]:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
            else:
                self._memory[key] = {}
                while len(self._memory) > self.memory_volumes:
                    self._memory.popitem(last=False)
            return self._memory[key]

    def _path(self, key: str, index: int) -> Path:
        return self.folder / key / f"{index:05d}.npy"

    def get(self, key: str, index: int) -> np.ndarray | None:
        slices = self._slices(key)
        if index in slices:
            return slices[index]
        if self.use_disk:
            path = self._path(key, index)
            if path.is_file():
                try:
                    slices[index] = np.load(path, allow_pickle=False)
                    return slices[index]
                except (OSError, ValueError):
                    path.unlink(missing_ok=True)  # a torn write from a killed process: recompute
        return None

    def put(self, key: str, index: int, embedding: np.ndarray) -> None:
        embedding = np.asarray(embedding, dtype=np.float16)
        self._slices(key)[index] = embedding
        if self.use_disk:
            path = self._path(key, index)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # a name of its own per process and thread: workers sharing the folder never write one file
                tmp = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
                with open(tmp, "wb") as handle:
                    np.save(handle, embedding, allow_pickle=False)
                os.replace(tmp, path)
            except OSError:
                self.use_disk = False  # read-only or full disk: keep working from memory

    def missing(self, key: str, indices: list[int]) -> list[int]:
        return [i for i in indices if self.get(key, i) is None]

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
            self._decoded.clear()

    # Decoded masks: the decoder is deterministic given (slice embedding, prompt), and after a correction
    # most slices are prompted with the same box as before, so re-adapting decodes only what changed.
    MAX_DECODED = 4096

    def get_decoded(self, key: str, index: int, prompt: bytes) -> np.ndarray | None:
        with self._lock:
            return self._decoded.get((key, index, prompt))

    def put_decoded(self, key: str, index: int, prompt: bytes, mask: np.ndarray) -> None:
        with self._lock:
            self._decoded[(key, index, prompt)] = mask
            while len(self._decoded) > self.MAX_DECODED:
                self._decoded.popitem(last=False)
