import os
import signal

import duckdb
import pyarrow.parquet as pq
import pytest
import torch

from harness import runner
from harness.config import RunConfig
from harness.data import CORRUPTION_SCHEME
from harness.runner import execute, resolve_config
from harness.schema import EPOCHS_SCHEMA, RUNS_SCHEMA
from harness.training import RunProgress, evaluate

SMALL = dict(model="mlp_1x512", dataset="digits", train_size=200, test_size=100, batch_size=32, seed=0)


def run(tmp_path, **changes):
    return execute(RunConfig(**{**SMALL, **changes}), tmp_path, device="cpu")


def test_random_labels_are_fitted_and_stored(tmp_path):
    outcome = run(tmp_path, corruption="random_labels", max_epochs=300, lr=0.1, lr_decay=1.0)
    row = outcome.row
    assert row["status"] == "completed" and row["train_acc"] == 1.0
    assert row["fit_epoch"] == row["epochs"] and row["fit_step"] == row["steps"] == row["epochs"] * 7
    assert row["param_count"] == 64 * 512 + 512 + 5130
    runs = duckdb.sql(f"SELECT * FROM read_parquet('{tmp_path}/runs/**/*.parquet', union_by_name=true)").fetchall()
    epochs = duckdb.sql(
        f"SELECT count(*), max(epoch), max(train_acc) FROM read_parquet('{tmp_path}/epochs/**/*.parquet', union_by_name=true)"
    ).fetchall()[0]
    assert len(runs) == 1
    assert epochs == (row["epochs"], row["epochs"], 1.0)
    assert pq.read_schema(outcome.path).names == RUNS_SCHEMA.names
    assert pq.read_schema(tmp_path / "epochs" / f"{row['run_id']}.parquet").names == EPOCHS_SCHEMA.names


def test_same_seed_same_result_and_other_seed_differs(tmp_path):
    a = run(tmp_path / "a", corruption="random_labels", max_epochs=2).row
    b = run(tmp_path / "b", corruption="random_labels", max_epochs=2).row
    c = run(tmp_path / "c", corruption="random_labels", max_epochs=2, seed=1).row
    assert a["run_id"] == b["run_id"] != c["run_id"]
    assert a["train_loss"] == b["train_loss"] and a["test_acc"] == b["test_acc"]
    assert a["train_loss"] != c["train_loss"]


def test_completed_run_is_skipped_unless_forced(tmp_path):
    first = run(tmp_path, max_epochs=1)
    again = run(tmp_path, max_epochs=1)
    assert again.skipped and again.row["run_id"] == first.row["run_id"]
    forced = run(tmp_path, max_epochs=1)
    assert forced.skipped
    assert not execute(RunConfig(**SMALL, max_epochs=1), tmp_path, device="cpu", force=True).skipped
    assert len(list((tmp_path / "runs").iterdir())) == 1


class InterruptAt(RunProgress):
    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def batch(self, epoch, batch, loss):
        if (epoch, batch) == self.at:
            raise KeyboardInterrupt


def test_interrupt_stores_finished_epochs_and_no_temp_files(tmp_path):
    config = resolve_config(RunConfig(**{**SMALL, "max_epochs": 10, "corruption": "random_labels"}))
    with pytest.raises(KeyboardInterrupt):
        execute(config, tmp_path, device="cpu", progress=InterruptAt(3, 2))
    row = pq.read_table(tmp_path / "runs" / f"{config.run_id}.parquet").to_pylist()[0]
    assert row["status"] == "interrupted" and row["epochs"] == 2 and row["steps"] == 2 * 7 + 2
    assert pq.read_table(tmp_path / "epochs" / f"{config.run_id}.parquet").num_rows == 2
    leftovers = [
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".parquet")
    ]
    assert [str(p) for p in leftovers] == [f"checkpoints/{config.run_id}.pt"]  # kept for the resume, nothing else
    # An interrupted run is not "completed": running again redoes it.
    assert not execute(config, tmp_path, device="cpu").skipped


def test_ctrl_c_as_a_completed_run_is_stored_takes_effect_after_its_checkpoint_is_removed(tmp_path, monkeypatch):
    store = runner.store

    def store_then_interrupt(*args):
        path = store(*args)
        os.kill(os.getpid(), signal.SIGINT)  # between the stored row and the checkpoint's removal
        return path

    monkeypatch.setattr(runner, "store", store_then_interrupt)
    config = resolve_config(RunConfig(**SMALL, max_epochs=2))
    with pytest.raises(KeyboardInterrupt):
        execute(config, tmp_path, device="cpu")
    assert pq.read_table(tmp_path / "runs" / f"{config.run_id}.parquet").to_pylist()[0]["status"] == "completed"
    assert not (tmp_path / "checkpoints" / f"{config.run_id}.pt").exists()


class FailAt(RunProgress):
    def epoch(self, row):
        raise RuntimeError("disk on fire")


def test_failure_is_recorded(tmp_path):
    config = resolve_config(RunConfig(**{**SMALL, "max_epochs": 3}))
    with pytest.raises(RuntimeError):
        execute(config, tmp_path, device="cpu", progress=FailAt())
    row = pq.read_table(tmp_path / "runs" / f"{config.run_id}.parquet").to_pylist()[0]
    assert row["status"] == "failed" and "disk on fire" in row["error"] and row["epochs"] == 1


def test_lr_decays_every_epoch_and_model_default_lr(tmp_path):
    outcome = run(tmp_path, max_epochs=3, corruption="random_labels")
    lrs = pq.read_table(tmp_path / "epochs" / f"{outcome.row['run_id']}.parquet").column("lr").to_pylist()
    assert outcome.row["lr"] == 0.01
    assert lrs == pytest.approx([0.01, 0.0095, 0.009025])


def scores_of(logits: list[list[float]], labels: list[int]) -> tuple[float, float, float]:
    """:func:`evaluate` of a model whose logits are given."""
    return evaluate(torch.nn.Identity(), [torch.tensor(logits)], torch.tensor(labels))


def test_top5_counts_a_label_among_the_five_largest_logits():
    logits = [[6.0, 5, 4, 3, 2, 1, 0]] * 4  # no ties: class c is the (c + 1)-th largest
    loss, top1, top5 = scores_of(logits, [0, 4, 5, 6])  # first, fifth (in), sixth and seventh (out)
    assert (top1, top5) == (0.25, 0.5)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor([0, 4, 5, 6])))


def test_with_fewer_than_five_classes_every_example_is_in_the_top5():
    _, top1, top5 = scores_of([[3.0, 2, 1], [1.0, 2, 3], [0.0, 0.5, -1]], [2, 0, 2])
    assert (top1, top5) == (0.0, 1.0)


def test_top5_is_recorded_per_epoch_and_summarized_per_run(tmp_path):
    row = run(tmp_path, max_epochs=2, regularizers=("early_stopping",)).row
    epochs = pq.read_table(tmp_path / "epochs" / f"{row['run_id']}.parquet").to_pylist()
    for epoch in epochs:
        for split in ("train", "test", "holdout"):
            assert 0 <= epoch[f"{split}_acc"] <= epoch[f"{split}_top5"] <= 1, (split, epoch)
    assert any(epoch["test_top5"] > epoch["test_acc"] for epoch in epochs)  # measured, not copied
    assert (row["train_top5"], row["test_top5"]) == (epochs[-1]["train_top5"], epochs[-1]["test_top5"])
    assert row["best_test_top5"] == max(epoch["test_top5"] for epoch in epochs)
    assert row["corruption_scheme"] == CORRUPTION_SCHEME == 2

    alone = run(tmp_path, max_epochs=1).row  # no holdout: null, like its accuracy
    (epoch,) = pq.read_table(tmp_path / "epochs" / f"{alone['run_id']}.parquet").to_pylist()
    assert epoch["holdout_acc"] is epoch["holdout_top5"] is None and epoch["train_top5"] is not None
