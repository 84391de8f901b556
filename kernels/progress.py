"""Progress reports: ``callback(stage, done, total)`` for the stages of a kernel solve."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[str, int, int], None]
"""Called with a stage ("gram", "factor", "solve", "predict"), steps done and steps in total."""


class StageProgress:
    """Counts tile operations of one stage and reports them to an optional callback.

    The total may grow while the stage runs (more feature blocks, refinement steps).
    """

    def __init__(self, callback: ProgressCallback | None, stage: str, total: int):
        self.callback, self.stage, self.total, self.done = callback, stage, total, 0
        self._report()

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        self._report()

    def extend(self, steps: int) -> None:
        """Add ``steps`` to the total."""
        self.total += steps
        self._report()

    def restart(self) -> None:
        """Count the stage again from zero (a factorization retried with jitter)."""
        self.done = 0
        self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.stage, self.done, self.total)


def advance(progress: StageProgress | None, steps: int = 1) -> None:
    """Advance ``progress`` when there is one."""
    if progress is not None:
        progress.advance(steps)
