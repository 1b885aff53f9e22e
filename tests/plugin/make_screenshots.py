"""Screenshots of a real run of the napari plugin, for the README.

Opens a shared case through the plugin's reader, paints a structure's reference on k protocol slices
in a support layer made by the widget, adapts, and saves what a user sees at each step. Needs a display
(run it under Xvfb), the shared data folder, and no network:

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m tests.plugin.make_screenshots OUT_DIR [--backend selfprompt-sam]

With ``--scribbles`` the structure is painted as strokes instead (bench/strokes.py, background strokes with the
widget's "Paint background"), and the shots are 4-scribbled-slice.png and 5-scribbles-prediction.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from napari_fewshot3d.bench.protocol import paint_slices
from napari_fewshot3d.plugin.layer_io import display_order, volume_to_layer_data
from napari_fewshot3d.volume_io import read_labels

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def wait_idle(widget, seconds: float = 3600) -> None:
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + seconds
    while widget.busy:
        if time.monotonic() > deadline:
            raise TimeoutError("the widget's job did not finish in time")
        QApplication.processEvents()
        time.sleep(0.02)
    for _ in range(20):  # let the canvas draw what the job produced
        QApplication.processEvents()
        time.sleep(0.02)


def adapted(widget) -> bool:
    """Adapt and segment as the button does; False (and why, on stderr) when no prediction came."""
    widget.adapt_and_segment()
    wait_idle(widget)
    if widget.prediction_layer is None:
        sys.stderr.write(f"error: no prediction: {widget.jobs.last_message}\n")
    return widget.prediction_layer is not None


def show_slice(viewer, affine: np.ndarray, shape: tuple[int, ...], index: int) -> None:
    """Move the slider to the volume's slice ``index`` along its axial axis, as displayed."""
    order, flips = display_order(affine)
    axis = order[0]
    step = shape[axis] - 1 - index if axis in flips else index
    viewer.dims.current_step = (step, *viewer.dims.current_step[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files (created if missing)")
    parser.add_argument("--case", default="ct_abdomen", help="folder in ../shared/data (default ct_abdomen)")
    parser.add_argument("--value", type=int, default=5, help="label value of the structure (default 5: liver)")
    parser.add_argument("--name", default="liver", help="its class name (default liver)")
    parser.add_argument("--k", type=int, default=3, help="painted slices (default 3)")
    parser.add_argument("--backend", default="interpolate", help="backend (default interpolate)")
    parser.add_argument("--scribbles", action="store_true", help="paint strokes instead of whole slices")
    args = parser.parse_args(argv)

    import napari

    folder = DATA / args.case
    if not folder.is_dir():
        sys.stderr.write(f"error: {folder} not found (the shared data folder sits beside the repository)\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True, title="napari-fewshot3d")
    viewer.window._qt_window.resize(1500, 950)
    _, widget = viewer.window.add_plugin_dock_widget("napari-fewshot3d", "Few-shot 3D segmentation")
    viewer.open(folder / "image.nii.gz", plugin="napari-fewshot3d")
    widget.backend_combo.setCurrentText(args.backend)
    wait_idle(widget)

    reference = read_labels(folder / "reference_labels.nii.gz")
    target = np.where(reference.array == args.value, args.value, 0).astype(np.uint8)
    painted = paint_slices(target, [args.value], 2, k=args.k)
    support_layer = widget.new_support_layer()
    widget.classes_edit.setText(f"{args.value}={args.name}")
    slices = np.flatnonzero(painted.any(axis=(0, 1)))
    if args.scribbles:
        return scribbles(viewer, widget, support_layer, reference, painted, args, int(slices[len(slices) // 2]))
    support_layer.data[...] = volume_to_layer_data(reference.with_array(painted))[0]
    support_layer.refresh()
    show_slice(viewer, reference.affine, reference.shape, int(slices[len(slices) // 2]))
    wait_idle(widget)
    viewer.screenshot(str(args.out / "1-painted-slice.png"), canvas_only=False)

    if not adapted(widget):
        return 1
    support_layer.visible = False
    between = int((slices[0] + slices[1]) // 2) if len(slices) > 1 else int(slices[0]) + 3
    show_slice(viewer, reference.affine, reference.shape, between)
    wait_idle(widget)
    viewer.screenshot(str(args.out / "2-prediction-unpainted-slice.png"), canvas_only=False)

    viewer.dims.ndisplay = 3  # the widget draws the image as context and turns the camera to an oblique view
    wait_idle(widget)
    viewer.screenshot(str(args.out / "3-prediction-3d.png"), canvas_only=False)
    sys.stdout.write(f"wrote 3 screenshots to {args.out}/\n")
    viewer.close()
    return 0


def scribbles(viewer, widget, support_layer, reference, painted, args, middle: int) -> int:
    """Strokes in place of the painted slices, background with the widget's button; the result on a scribbled slice."""
    from napari_fewshot3d.bench.strokes import scribble_slices

    background = widget.paint_background()
    pixel_mm = float(np.mean(reference.spacing[:2]))
    strokes = scribble_slices(painted, [args.value], 2, pixel_mm, background)
    support_layer.data[...] = volume_to_layer_data(reference.with_array(strokes))[0]
    support_layer.refresh()
    show_slice(viewer, reference.affine, reference.shape, middle)
    wait_idle(widget)
    viewer.screenshot(str(args.out / "4-scribbled-slice.png"), canvas_only=False)
    if not adapted(widget):
        return 1
    widget.prediction_layer.opacity = 0.45
    viewer.layers.move(viewer.layers.index(support_layer), len(viewer.layers))  # the strokes drawn on top
    wait_idle(widget)
    viewer.screenshot(str(args.out / "5-scribbles-prediction.png"), canvas_only=False)
    sys.stdout.write(f"wrote 2 screenshots to {args.out}/\n")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
