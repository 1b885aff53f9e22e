"""Progress reporting and cancellation for long engine calls.

Front ends pass a plain callback ``(fraction, message)`` and a :class:`CancelToken`; the engine
wraps them in a :class:`Task` whose sub-ranges let each stage report its own 0..1 without
knowing where it sits in the whole job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import Cancelled

ProgressCallback = Callable[[float, str], None]


class CancelToken:
    """Set from any thread (a Cancel button); the engine checks it between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class Task:
    """A progress callback and cancel token, scaled to a part [start, end] of the whole job."""

    def __init__(
        self,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        start: float = 0.0,
        end: float = 1.0,
    ) -> None:
        self._progress = progress
        self.cancel_token = cancel or CancelToken()
        self._start, self._end = start, end

    @classmethod
    def of(cls, progress: ProgressCallback | Task | None, cancel: CancelToken | None = None) -> Task:
        """Accept either a ready Task or the callback + token a front end holds."""
        if isinstance(progress, Task):
            return progress
        return cls(progress, cancel)

    def report(self, fraction: float, message: str = "") -> None:
        """Report progress within this task (0..1) and stop here if the user cancelled."""
        self.check()
        if self._progress is not None:
            fraction = min(max(fraction, 0.0), 1.0)
            self._progress(self._start + (self._end - self._start) * fraction, message)

    def check(self) -> None:
        if self.cancel_token.cancelled:
            raise Cancelled("cancelled")

    def sub(self, start: float, end: float) -> Task:
        """The part [start, end] of this task, as a task of its own."""
        span = self._end - self._start
        return Task(self._progress, self.cancel_token, self._start + span * start, self._start + span * end)
