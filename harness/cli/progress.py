"""Time left for the progress displays of long commands: an epoch, a run, a sweep."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn


def progress_columns(field: str = "stats") -> tuple:
    """The columns of a progress display: the task, its bar, steps done of all, time elapsed and the
    task's text field ``field``."""
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn(f"{{task.fields[{field}]}}"),
    )


def format_seconds(seconds: float) -> str:
    """``seconds`` as H:MM:SS (rounded up, so that 0:00:00 only shows when nothing is left)."""
    minutes, secs = divmod(int(-(-seconds // 1)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Countdown:
    """The time left for ``total`` steps at the pace of the steps done since it (re)started."""

    def __init__(self, total: int, done: int = 0, clock=None, started: float | None = None):
        self.clock = clock or time.monotonic
        self.restart(total, done, started)

    def restart(self, total: int, done: int = 0, started: float | None = None) -> None:
        """Count again from ``started`` (default: now), with ``done`` of ``total`` steps already behind
        (not timed)."""
        self.total, self.first = total, done
        self.started = self.clock() if started is None else started

    def seconds_per_step(self, done: int) -> float | None:
        """Mean seconds of the steps timed so far, or None before the first."""
        timed = done - self.first
        return (self.clock() - self.started) / timed if timed > 0 else None

    def seconds_left(self, done: int) -> float | None:
        """Seconds until ``total`` steps at the pace so far, or None before the first timed step."""
        pace = self.seconds_per_step(done)
        return None if pace is None else pace * max(self.total - done, 0)

    def text(self, done: int) -> str:
        """``H:MM:SS left``, or empty before the first timed step."""
        seconds = self.seconds_left(done)
        return "" if seconds is None else f"{format_seconds(seconds)} left"


class RunsLeft:
    """The time left for a sweep's runs at the pace of those finished so far; runs skipped as
    already completed are reported before any starts, and are not timed."""

    def __init__(self, total: int, clock=None):
        self.countdown = Countdown(total, clock=clock)
        self.done = 0

    def finished(self, status: str) -> None:
        """Count a run that landed with ``status`` (completed, failed, skipped, ...)."""
        self.done += 1
        if status == "skipped":
            self.countdown.restart(self.countdown.total, self.done)

    def text(self) -> str:
        """``H:MM:SS left``, or empty before the first run finished."""
        return self.countdown.text(self.done)
