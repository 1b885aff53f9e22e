"""Long engine calls off the GUI thread: one job at a time, with progress, a real cancel, and clear messages.

The engine reports progress through a callback and stops at its next check once a :class:`CancelToken`
is set; here the callback emits a Qt signal (delivered on the GUI thread) and the Cancel button sets
the token, so the GUI never waits on a computation and never touches layers from a worker thread.

A worker thread that outlives the Qt objects it reports to aborts the whole process (its signals are
deleted under it), so the runner shuts down before they go: when the window closes, when the
application quits and, for scripts that end without an event loop, at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qtpy.QtCore import QObject, QThreadPool, Signal

from ..errors import Cancelled, InputError, describe
from ..progress import CancelToken, Task

log = logging.getLogger(__name__)

#: The kind of the background job that precomputes slice embeddings (the one other jobs may replace).
EMBED = "embedding slices"


def notify_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def notify_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


def describe_error(exc: BaseException) -> str:
    """The message a user sees for a failed job: their own mistake, memory, or a bug to report."""
    return describe(
        exc, "close other layers or programs, crop the image, or use a smaller backend", "see the terminal for details"
    )


@dataclass
class Job:
    kind: str
    token: CancelToken = field(default_factory=CancelToken)
    worker: Any = None
    done: Callable[[Any], None] | None = None
    #: Cancelled to make room for another job: ends silently.
    superseded: bool = False
    outcome: str = "done"
    #: Set once ``work`` has returned or raised in its thread.
    ended: threading.Event = field(default_factory=threading.Event)


class JobRunner(QObject):
    """Runs one engine job at a time in a napari worker thread and reports through Qt signals."""

    #: (fraction 0..1, message), on the GUI thread.
    progressed = Signal(float, str)
    #: (busy, kind of job, how it ended: "" while busy, else done / cancelled / superseded / failed), GUI thread.
    busy_changed = Signal(bool, str, str)
    #: a user-facing message after a job failed or was cancelled, on the GUI thread.
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self._next: Callable[[], None] | None = None
        self._follow_up: Callable[[], None] | None = None
        self._closed = False
        self.last_message = ""
        _shutdown_at_exit.add(self)

    @property
    def busy(self) -> bool:
        return self.job is not None or self._next is not None

    @property
    def foreground(self) -> bool:
        """Busy with something the user asked for (not only the background embedding)."""
        return self._next is not None or (self.job is not None and self.job.kind != EMBED)

    def start(self, kind: str, work: Callable[[Task], Any], done: Callable[[Any], None]) -> bool:
        """Run ``work(task)`` in a thread and ``done(result)`` on the GUI thread. A running background
        embedding is cancelled first (what it computed stays cached); another running job refuses."""
        if self._closed:
            return False
        if self.job is not None:
            if self.job.kind != EMBED:
                self.say_error(f"busy with {self.job.kind}: wait for it or press Cancel")
                return False
            self.job.superseded = True
            self.job.token.cancel()
            self._next = lambda: self._launch(kind, work, done)
            self.busy_changed.emit(True, kind, "")
            return True
        self._launch(kind, work, done)
        return True

    def drop_background(self) -> None:
        """Silently stop a background embedding whose settings are no longer the chosen ones."""
        if self.job is not None and self.job.kind == EMBED and self._next is None:
            self.job.superseded = True
            self.job.token.cancel()

    def cancel(self) -> None:
        """Stop the running job at the engine's next check; nothing it computed is shown."""
        self._next = None
        if self.job is not None:
            self.job.superseded = False  # the user asked: say so
            self.job.token.cancel()
            self.progressed.emit(-1.0, f"cancelling {self.job.kind}…")

    def shutdown(self, wait_s: float = 30.0) -> None:
        """Stop for good: cancel the job and wait (bounded) until its thread has let go of its signals.

        The engine checks the token between slices, so this takes at most one unit of work."""
        if self._closed:
            return
        self._closed = True
        self._next = None
        job = self.job
        if job is None:
            return
        job.superseded = True  # nobody is left to tell
        job.token.cancel()
        if job.ended.wait(wait_s):
            QThreadPool.globalInstance().waitForDone(2000)  # the worker's last emits after ``work`` returned
        else:
            log.warning("%s did not stop within %.0f s of closing", job.kind, wait_s)

    def _launch(self, kind: str, work: Callable[[Task], Any], done: Callable[[Any], None]) -> None:
        from napari.qt.threading import create_worker

        job = Job(kind, done=done)
        task = Task(self._report, job.token)

        def run(task: Task) -> Any:
            try:
                return work(task)
            finally:
                job.ended.set()

        worker = create_worker(run, task, _start_thread=False, _ignore_errors=True)
        # Bound methods of this QObject: Qt delivers them on the GUI thread. Only one job runs at a
        # time and the next starts after this one's `finished`, so `self.job` is always the sender.
        worker.returned.connect(self._returned)
        worker.errored.connect(self._errored)
        worker.finished.connect(self._finished)
        job.worker = worker
        self.job = job
        self.busy_changed.emit(True, kind, "")
        self.progressed.emit(0.0, f"{kind}…")
        worker.start()

    def _report(self, fraction: float, message: str) -> None:
        if self._closed:
            raise Cancelled("closed")
        try:
            self.progressed.emit(float(fraction), message)  # from the worker thread; queued to the GUI thread
        except RuntimeError as exc:  # the widget is gone (deleted by Qt): stop the work
            raise Cancelled("closed") from exc

    def _returned(self, result: Any) -> None:
        job = self.job
        if job is None or job.done is None or self._closed:
            return
        if job.token.cancelled:  # finished just as the user pressed Cancel: honour the Cancel
            self._cancelled(job)
            return
        try:
            job.done(result)
        except Exception as exc:  # showing a result must not kill the widget
            self._errored(exc)

    def _errored(self, exc: BaseException) -> None:
        job = self.job or Job("job")
        if isinstance(exc, Cancelled) or self._closed:
            self._cancelled(job)
            return
        job.outcome = "failed"
        if not isinstance(exc, (InputError, MemoryError)):
            log.error("%s failed", job.kind, exc_info=(type(exc), exc, exc.__traceback__))
        self.say_error(f"{job.kind} failed: {describe_error(exc)}")

    def _cancelled(self, job: Job) -> None:
        job.outcome = "superseded" if job.superseded else "cancelled"
        if not job.superseded:
            self.say_info(f"{job.kind} cancelled; nothing was changed")

    def then(self, follow_up: Callable[[], None]) -> None:
        """Run ``follow_up`` on the GUI thread once the running job has ended (from its ``done``: e.g. a question
        its result raises, whose answer may start another job)."""
        self._follow_up = follow_up

    def _finished(self) -> None:
        job, self.job = self.job, None
        pending, self._next = self._next, None
        follow_up, self._follow_up = self._follow_up, None
        if pending is not None:
            pending()
        elif not self._closed:
            self.busy_changed.emit(False, job.kind if job else "", job.outcome if job else "done")
            if follow_up is not None:
                follow_up()

    def say_error(self, message: str) -> None:
        self.last_message = message
        self.failed.emit(message)
        notify_error(message)

    def say_info(self, message: str) -> None:
        self.last_message = message
        self.failed.emit(message)
        notify_info(message)


class _RunnersAtExit:
    """Runners still alive when the interpreter exits (a script that closed its viewer and returned).

    Python tears down Qt wrappers at exit while a worker thread may still be reporting; shutting the
    runners down first lets their threads end on a cancel instead of aborting the process."""

    def __init__(self) -> None:
        self._runners: weakref.WeakSet[JobRunner] = weakref.WeakSet()
        atexit.register(self.shutdown_all)

    def add(self, runner: JobRunner) -> None:
        self._runners.add(runner)

    def shutdown_all(self) -> None:
        for runner in list(self._runners):
            try:
                runner.shutdown()
            except RuntimeError:  # its Qt object is already deleted: nothing left to report to
                continue


_shutdown_at_exit = _RunnersAtExit()
