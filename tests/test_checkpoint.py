"""Per-epoch checkpoints: a resumed run stores the same epochs as an uninterrupted one."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from harness import checkpoint
from harness.config import RunConfig
from harness.results import read_row, write_atomically
from harness.runner import execute, resolve_config
from harness.training import RunProgress

# Dropout draws from torch's global generator, random_crop from the batch generator:
# a resume that missed either would train on different numbers.
CONFIG = RunConfig(
    model="mlp_1x512",
    dataset="digits",
    corruption="random_labels",
    train_size=200,
    test_size=50,
    batch_size=32,
    max_epochs=4,
    regularizers=("dropout=0.3", "random_crop=1"),
)
RUN_ID = resolve_config(CONFIG).run_id


class StopAfter(RunProgress):
    """Ctrl-C right after epoch ``epoch`` was evaluated (before its checkpoint is written)."""

    def __init__(self, epoch: int):
        self.stop_epoch = epoch

    def epoch(self, row):
        if row["epoch"] == self.stop_epoch:
            raise KeyboardInterrupt


def epochs_rows(results_dir, run_id):
    rows = pq.read_table(results_dir / "epochs" / f"{run_id}.parquet").to_pylist()
    return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in rows]


def test_resumed_run_stores_the_epochs_of_an_uninterrupted_run(tmp_path):
    straight = execute(CONFIG, tmp_path / "a", device="cpu")
    assert straight.row["status"] == "completed" and straight.row["epochs"] == 4

    with pytest.raises(KeyboardInterrupt):
        execute(CONFIG, tmp_path / "b", device="cpu", progress=StopAfter(3))
    saved = checkpoint.checkpoint_path(tmp_path / "b", RUN_ID)
    assert read_row(tmp_path / "b", "runs", RUN_ID)["status"] == "interrupted"
    content = torch.load(saved, weights_only=True)
    assert len(content["values"]["history"]) == 2  # epoch 3 ended before its checkpoint
    assert set(content["state"]) == {"model", "optimizer", "order_generator", "batch_generator", "examples"}

    torch.manual_seed(123)  # the global state the resumed run finds is not the one it left
    resumed = execute(CONFIG, tmp_path / "b", device="cpu")
    assert resumed.row["status"] == "completed" and resumed.row["resumed_from_epoch"] == 2
    assert straight.row["resumed_from_epoch"] == 0
    assert epochs_rows(tmp_path / "b", RUN_ID) == epochs_rows(tmp_path / "a", RUN_ID)
    examples = [
        pq.read_table(root / "examples" / f"{RUN_ID}.parquet").to_pylist() for root in (tmp_path / "a", tmp_path / "b")
    ]
    assert examples[0] == examples[1]  # the per-example records resume too
    assert not saved.exists()


def test_no_resume_starts_over(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        execute(CONFIG, tmp_path, device="cpu", progress=StopAfter(3))
    outcome = execute(CONFIG, tmp_path, device="cpu", resume=False)
    assert outcome.row["resumed_from_epoch"] == 0 and outcome.row["epochs"] == 4


def test_random_states_round_trip_through_a_weights_only_file(tmp_path):
    objects = {"generator": checkpoint.GeneratorState(torch.Generator().manual_seed(5))}
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    checkpoint.save(tmp_path / "c.pt", objects, {"rows": [{"a": 1.5, "b": None}]})
    expected = (
        random.random(),
        np.random.rand(),
        torch.rand(1).item(),
        torch.rand(1, generator=objects["generator"].generator).item(),
    )
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    other = {"generator": checkpoint.GeneratorState(torch.Generator().manual_seed(9))}
    values = checkpoint.load(tmp_path / "c.pt", other)
    assert values == {"rows": [{"a": 1.5, "b": None}]}
    assert (
        random.random(),
        np.random.rand(),
        torch.rand(1).item(),
        torch.rand(1, generator=other["generator"].generator).item(),
    ) == expected
    with pytest.raises(ValueError, match="does not match this run"):
        checkpoint.load(tmp_path / "c.pt", {"model": torch.nn.Linear(1, 1)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path):
    results = tmp_path / "r"
    command = [
        sys.executable,
        "-c",
        "from harness.cli import main; main()",
        "run",
        "--plugin",
        "mlp_1x512",
        "--dataset",
        "digits",
        "--corruption",
        "random_labels",
        "--max-epochs",
        "200",
        "--train-size",
        "1000",
        "--device",
        "cpu",
        "--results-dir",
        str(results),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while process.poll() is None and not list((results / "checkpoints").glob("*.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    row = pq.read_table(next((results / "runs").glob("*.parquet"))).to_pylist()[0]
    assert row["status"] == "interrupted" and row["epochs"] >= 1
    assert torch.load(checkpoint.checkpoint_path(results, row["run_id"]), weights_only=True)["values"]["history"]


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_during_a_write_takes_effect_once_the_file_is_in_place(tmp_path, number):
    def write(tmp):
        os.kill(os.getpid(), number)  # arrives in the middle of the write
        Path(tmp).write_text("whole")

    with checkpoint.sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "table.parquet", write)
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]
    assert (tmp_path / "table.parquet").read_text() == "whole"
