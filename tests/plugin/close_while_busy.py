"""Open napari with the plugin's dock, start a job, close napari while it runs, and exit: run as a subprocess
by test_napari_close.py, which checks the exit code (a worker outliving its Qt objects aborts with 134).

    python -m tests.plugin.close_while_busy IMAGE {embedding,adapt} SECONDS [--quit-app]
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("job", choices=["embedding", "adapt"])
    parser.add_argument("seconds", type=float, help="how long the job runs before napari is closed")
    parser.add_argument("--quit-app", action="store_true", help="quit the application instead of closing the window")
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_fewshot3d import backends
    from napari_fewshot3d.plugin.widget import TITLE

    backends._REGISTRY["slow-test"] = "tests.plugin._fake_backends:SlowBackend"  # a separate process: no leak
    viewer = napari.Viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-fewshot3d", TITLE)
    widget.backend_combo.setCurrentText("selfprompt-sam" if args.job == "embedding" else "slow-test")
    viewer.open(args.image, plugin="napari-fewshot3d")
    if args.job == "adapt":
        support = widget.new_support_layer()
        support.data[support.data.shape[0] // 2, 40:60, 40:60] = 1
        support.data[support.data.shape[0] // 2 + 4, 40:60, 40:60] = 1
        widget.adapt_and_segment()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    expected = "embedding slices" if args.job == "embedding" else "adapt and segment"
    if widget.jobs.job is None or widget.jobs.job.kind != expected:
        print(f"error: the {args.job} job was not running when napari was closed")
        return 1
    print(f"closing napari during {widget.jobs.job.kind}", flush=True)
    if args.quit_app:
        QApplication.instance().quit()
        QApplication.processEvents()
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
