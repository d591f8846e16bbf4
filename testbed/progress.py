"""A run's progress on a terminal: claims finished of the total, the simulated day, the
rate and the time spent, redrawn in place (rich). Nothing is drawn when the output is not a
terminal, so a run piped to a file or another program prints only its report."""

from __future__ import annotations

import threading
import time
from typing import TextIO

REFRESH = 0.5      # wall seconds between redraws
QUIET_START = 2.0  # a run shorter than this shows no progress at all


class ProgressDisplay:
    """``with ProgressDisplay(sim.progress, stream):`` around a run."""

    def __init__(self, progress, stream: TextIO, enabled: bool = True):
        self.progress = progress
        self.stream = stream
        self.enabled = enabled and _is_terminal(stream)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "ProgressDisplay":
        if self.enabled:
            self._thread = threading.Thread(target=self._draw, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def line(self) -> str:
        return describe(self.progress, time.monotonic())

    def _draw(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text
        if self._stop.wait(QUIET_START):
            return
        console = Console(file=self.stream)
        with Live(Text(self.line()), console=console, refresh_per_second=1 / REFRESH,
                  transient=True) as live:
            while not self._stop.wait(REFRESH):
                live.update(Text(self.line()))


def describe(progress, now: float) -> str:
    """One line: phase, claims finished of the total, simulated day, rate, elapsed."""
    elapsed = now - progress.started
    parts = [progress.phase]
    if progress.claims:
        share = progress.finished / progress.claims
        parts.append(f"claims {progress.finished:,}/{progress.claims:,} ({share:.0%})")
    if progress.day is not None:
        parts.append(f"day {progress.day.isoformat()}")
    if progress.finished and elapsed > 0:
        parts.append(f"{progress.finished / elapsed:,.1f} claims/s")
    minutes, seconds = divmod(int(elapsed), 60)
    parts.append(f"{minutes}:{seconds:02d} elapsed")
    return "  ".join(parts)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
