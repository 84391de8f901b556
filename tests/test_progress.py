"""Time left in the progress displays: an epoch, a run, a sweep."""

import io
import time

import torch
from rich.console import Console
from rich.progress import Progress, TextColumn

from harness.cli.progress import Countdown, RunsLeft, format_seconds
from harness.cli.run import RichRunProgress
from harness.config import RunConfig


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_countdown_paces_the_steps_timed_since_it_restarted():
    clock = Clock()
    countdown = Countdown(10, clock=clock)
    assert countdown.text(0) == "" and countdown.seconds_left(0) is None
    clock.now = 30.0
    assert countdown.seconds_left(3) == 70.0 and countdown.text(3) == "0:01:10 left"
    countdown.restart(10, done=4)  # e.g. resumed: the steps before are not timed
    clock.now = 40.0
    assert countdown.seconds_per_step(6) == 5.0 and countdown.seconds_left(6) == 20.0
    assert format_seconds(3725.2) == "1:02:06" and format_seconds(0) == "0:00:00"


def test_run_progress_shows_the_time_left_in_the_epoch_and_at_most_in_the_run(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    progress = Progress(TextColumn("{task.fields[stats]}"), console=Console(file=io.StringIO()))
    bars = RichRunProgress(progress)
    bars.start(RunConfig(model="mlp_1x512", max_epochs=5), batches_per_epoch=20)
    epochs, batches = (progress.tasks[i].fields for i in (0, 1))
    for batch in range(1, 11):  # one second per batch
        clock.now += 1
        bars.batch(1, batch, torch.tensor(0.5))
    # the loss shown is the one of the previous update, so that reading it never waits for the device
    assert batches["stats"] == "0:00:10 left in the epoch"
    assert epochs["stats"] == "at most 0:01:30 left"  # 10 s of this epoch, then 4 epochs of 20 s
    for batch in range(11, 21):
        clock.now += 1
        bars.batch(1, batch, torch.tensor(0.25))
    assert batches["stats"] == "loss 0.500 · 0:00:00 left in the epoch"
    clock.now += 10  # evaluation: the run's pace counts it, the epoch's batches do not
    bars.epoch({"epoch": 1, "train_loss": 0.25, "train_acc": 0.5, "test_acc": 0.1})
    assert epochs["stats"] == "train loss 0.250 acc 50.0% · test acc 10.0% · at most 0:02:00 left"
    for batch in range(1, 11):
        clock.now += 2  # slower now
        bars.batch(2, batch, torch.tensor(0.2))
    assert batches["stats"] == "loss 0.250 · 0:00:20 left in the epoch"
    assert epochs["stats"].endswith("at most 0:01:50 left")  # 20 s, then 3 epochs at the 30 s of the first


def test_runs_left_times_only_the_runs_that_ran():
    clock = Clock()
    left = RunsLeft(6, clock=clock)
    clock.now = 5.0
    for _ in range(2):
        left.finished("skipped")  # already completed: reported at once, before any run starts
    assert left.text() == ""
    clock.now = 65.0  # two runs at once, both landing after a minute
    left.finished("completed")
    left.finished("failed")
    assert left.text() == "0:01:00 left"  # 30 s a run, two runs to go
