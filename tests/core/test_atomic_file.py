"""Model files and checkpoints appear whole or not at all."""

from __future__ import annotations

import pytest

from napari_fewshot3d.atomic_file import write_atomically
from napari_fewshot3d.errors import InputError


def test_a_failed_write_leaves_nothing_and_says_what(tmp_path):
    target = tmp_path / "model.zip"

    def broken(partial):
        partial.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(InputError, match="model.zip: model could not be written \\(No space left on device\\)"):
        write_atomically(target, broken, "model")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "volf.pt"
    target.write_bytes(b"step 50")

    def interrupted(partial):
        partial.write_bytes(b"step 1")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, interrupted, "checkpoint")
    assert [p.name for p in tmp_path.iterdir()] == ["volf.pt"] and target.read_bytes() == b"step 50"
    assert write_atomically(target, lambda partial: partial.write_bytes(b"step 100"), "checkpoint") == target
    assert target.read_bytes() == b"step 100"
