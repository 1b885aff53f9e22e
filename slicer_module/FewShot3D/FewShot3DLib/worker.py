"""One engine call at a time in a background thread, polled from the GUI thread.

The engine reports progress through a ``(fraction, message)`` callback and stops at its next check once its
:class:`CancelToken` is set. Here the callback only stores the latest report under a lock; Slicer's widget reads
it from a ``QTimer`` on the GUI thread, so no Qt or MRML object is ever touched off that thread and the GUI stays
responsive while the engine works.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from napari_fewshot3d.errors import Cancelled, InputError, describe
from napari_fewshot3d.progress import CancelToken, Task

log = logging.getLogger(__name__)

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job, safe to read on the GUI thread."""

    kind: str
    state: str
    fraction: float
    message: str

    @property
    def finished(self) -> bool:
        return self.state != RUNNING


def describe_error(exc: BaseException) -> str:
    """What a user reads for a failed job: their own mistake, memory, or a bug to report (with the log)."""
    return describe(
        exc,
        "crop the volume (Crop Volume module), close other data, or choose the cpu device",
        "the Python console and the log have the details",
    )


class BackgroundJob:
    """Runs ``work(task)`` in a daemon thread; ``poll()`` tells how far it got and how it ended."""

    def __init__(self, kind: str, work: Callable[[Task], Any]) -> None:
        self.kind = kind
        self._work = work
        self.token = CancelToken()
        self._lock = threading.Lock()
        self._fraction, self._message, self._state = 0.0, f"{kind}…", RUNNING
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"fewshot3d {kind}", daemon=True)

    def start(self) -> BackgroundJob:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the engine to stop at its next check; the job then ends as cancelled and its result is dropped."""
        self.token.cancel()
        with self._lock:
            if self._state == RUNNING:
                self._message = f"cancelling {self.kind}…"

    def poll(self) -> JobStatus:
        with self._lock:
            return JobStatus(self.kind, self._state, self._fraction, self._message)

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job ends (scripts and tests; the GUI polls instead)."""
        self._thread.join(timeout)
        return self.poll()

    def _report(self, fraction: float, message: str) -> None:
        with self._lock:
            self._fraction = max(self._fraction, float(fraction))
            if message and not self.token.cancelled:
                self._message = message

    def _run(self) -> None:
        try:
            result = self._work(Task(self._report, self.token))
        except Cancelled:
            self._finish(CANCELLED, f"{self.kind} cancelled; nothing was changed")
        except BaseException as exc:  # every failure reaches the user; none may kill the thread silently
            if not isinstance(exc, (InputError, MemoryError)):
                log.error("%s failed", self.kind, exc_info=(type(exc), exc, exc.__traceback__))
            self.error = exc
            self._finish(FAILED, f"{self.kind} failed: {describe_error(exc)}")
        else:
            if self.token.cancelled:  # finished just as the user pressed Cancel: honour the Cancel
                self._finish(CANCELLED, f"{self.kind} cancelled; nothing was changed")
            else:
                self.result = result
                self._finish(DONE, f"{self.kind} done", fraction=1.0)

    def _finish(self, state: str, message: str, fraction: float | None = None) -> None:
        with self._lock:
            self._state, self._message = state, message
            if fraction is not None:
                self._fraction = fraction
