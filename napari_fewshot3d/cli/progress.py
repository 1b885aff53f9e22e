"""What the CLI shows while the engine works: a bar on a terminal, one line per stage in a log."""

from __future__ import annotations

import sys
import time


class ProgressPrinter:
    """A progress bar on a terminal; one line per stage when stderr is a file or pipe."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None
        self.last_message = None
        self.started = time.perf_counter()
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=100, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining}", leave=False)

    def __call__(self, fraction: float, message: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.n = round(100 * fraction)
            self.bar.set_description_str(message[:40], refresh=True)
        elif message and message != self.last_message:
            sys.stderr.write(f"[{100 * fraction:3.0f}%] {message}\n")
            sys.stderr.flush()
        self.last_message = message

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def say(self, text: str) -> None:
        if not self.quiet:
            sys.stderr.write(text + "\n")
