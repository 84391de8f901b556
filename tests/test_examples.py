import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from harness.batches import random_subset
from harness.config import RunConfig
from harness.data import ImageDataset, mark_corrupted
from harness.examples import ExampleRecorder, auroc, examples_table
from harness.plugins.corruptions import random_labels, shuffled_pixels, true_labels
from harness.runner import execute, resolve_config
from harness.schema import EXAMPLES_SCHEMA
from harness.training import RunProgress

SMALL = dict(model="mlp_1x512", dataset="digits", train_size=200, test_size=100, batch_size=32, seed=0)


def feed(recorder, epoch, correct):
    """One epoch in which example i is classified as its label (class 0) iff correct[i]."""
    correct = torch.tensor(correct)
    logits = torch.where(correct[:, None], torch.tensor([2.0, 0.5, 0.0]), torch.tensor([0.0, 1.0, 0.0]))
    labels = torch.zeros(len(correct), dtype=torch.long)
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    recorder.observe(0, logits[:2], labels[:2], losses[:2], correct[:2])  # two batches
    recorder.observe(2, logits[2:], labels[2:], losses[2:], correct[2:])
    recorder.end_epoch(epoch)


def test_first_fit_learned_and_forgetting_events():
    recorder = ExampleRecorder(4)
    history = [[True, True, False, False], [True, False, False, True], [True, True, False, False]]
    for epoch, correct in enumerate(history, start=1):
        feed(recorder, epoch, correct)
    columns = recorder.columns()
    assert columns["first_fit_epoch"].tolist() == [1, 1, 0, 2]  # 0: never
    assert columns["learned_epoch"].tolist() == [1, 3, 0, 0]  # 0: not classified as its label at the end
    assert columns["forgetting_events"].tolist() == [0, 1, 0, 1]
    assert columns["final_margin"].tolist() == pytest.approx([1.5, 1.5, -1.0, -1.0])


def test_an_unfinished_epoch_changes_nothing_and_state_round_trips():
    recorder = ExampleRecorder(4)
    feed(recorder, 1, [True, False, True, False])
    state = recorder.state_dict()
    before = recorder.columns()
    logits = torch.tensor([[0.0, 3.0, 0.0]] * 2)
    recorder.observe(0, logits, torch.zeros(2, dtype=torch.long), torch.ones(2), torch.tensor([False, False]))
    for name, values in recorder.columns().items():
        assert np.array_equal(values, before[name])  # cut short before end_epoch
    restored = ExampleRecorder(4)
    restored.load_state_dict(state)
    feed(restored, 2, [False, True, True, True])
    feed(recorder, 2, [False, True, True, True])
    for name, values in recorder.columns().items():
        assert np.array_equal(values, restored.columns()[name])
    assert recorder.columns()["forgetting_events"].tolist() == [1, 0, 0, 0]
    with pytest.raises(ValueError, match="of 4 examples cannot restore a run of 3"):
        ExampleRecorder(3).load_state_dict(state)


def test_examples_table_nulls_and_order():
    recorder = ExampleRecorder(3)
    feed(recorder, 1, [True, False, True])
    index = np.array([2, 0, 1])
    table = examples_table(
        "r",
        recorder,
        index,
        np.array([5, 6, 7]),
        None,
        np.array([True, False, False]),
        None,
        np.array([True, True, False]),
    )
    rows = table.to_pylist()
    assert table.schema == EXAMPLES_SCHEMA
    assert [r["label"] for r in rows] == [7, 5, 6] and [r["corrupted"] for r in rows] == [False, True, False]
    assert rows[1]["first_fit_epoch"] is None and rows[0]["first_fit_epoch"] == 1
    assert rows[0]["true_label"] is None and rows[0]["redrawn"] is None


def test_auroc():
    assert auroc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert auroc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    assert auroc([1, 1, 1, 1], [True, False, True, False]) == 0.5
    assert auroc([1, 2], [True, True]) is None


def fake(n=500, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4, 4, 1), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return ImageDataset("fake", x, y, x[:10], y[:10], num_classes=10)


def test_random_labels_marks_changed_and_redrawn_labels():
    data = fake(5000)
    out = mark_corrupted(data, random_labels(data, 0.4, np.random.default_rng(1)), "random_labels")
    assert np.array_equal(out.corrupted, out.y_train != data.y_train)
    assert np.array_equal(out.y_train_true, data.y_train)
    assert not (out.corrupted & ~out.redrawn).any()  # every changed label was redrawn
    assert out.redrawn.mean() == pytest.approx(0.4, abs=0.03)
    assert (out.redrawn & ~out.corrupted).mean() == pytest.approx(0.04, abs=0.015)  # redrawn to the same class


def test_built_in_marks_and_third_party_corruptions_are_compared():
    data = fake()
    assert not mark_corrupted(data, true_labels(data, 1.0, None), "none").corrupted.any()
    assert mark_corrupted(data, shuffled_pixels(data, 1.0, np.random.default_rng(0)), "shuffled_pixels").corrupted.all()

    def third_party(d, p, rng):  # says nothing about what it changed
        y, x = d.y_train.copy(), d.x_train.copy()
        y[:10] = (y[:10] + 1) % 10
        x[20:25] = 0.0
        return d.replace(y_train=y, x_train=x)

    out = mark_corrupted(data, third_party(data, 1.0, None), "third_party")
    assert np.flatnonzero(out.corrupted).tolist() == [*range(10), *range(20, 25)]
    assert out.redrawn is None

    def wrong_shape(d, p, rng):
        return d.replace(corrupted=np.ones(3, dtype=bool))

    with pytest.raises(Exception, match="corrupted of shape"):
        mark_corrupted(data, wrong_shape(data, 1.0, None), "wrong_shape")


def read_examples(results_dir, run_id):
    return pq.read_table(results_dir / "examples" / f"{run_id}.parquet").to_pylist()


def test_every_run_stores_its_examples(tmp_path):
    outcome = execute(
        RunConfig(**SMALL, corruption="random_labels", corrupt_prob=0.5, max_epochs=6, lr=0.05), tmp_path, device="cpu"
    )
    rows = read_examples(tmp_path, outcome.row["run_id"])
    assert [r["index"] for r in rows] == list(range(200)) and all(r["trained"] for r in rows)
    assert sum(r["corrupted"] for r in rows) == sum(r["label"] != r["true_label"] for r in rows) > 50
    # Classified as its label at the end <=> learned; the share is the final training accuracy.
    assert np.mean([r["learned_epoch"] is not None for r in rows]) == outcome.row["train_acc"]
    assert np.mean([r["final_margin"] > 0 for r in rows]) == outcome.row["train_acc"]
    assert all(r["first_fit_epoch"] <= r["learned_epoch"] <= 6 for r in rows if r["learned_epoch"] is not None)


class InterruptAt(RunProgress):
    def batch(self, epoch, batch, loss):
        if (epoch, batch) == (3, 2):
            raise KeyboardInterrupt


def test_an_interrupted_run_stores_the_examples_of_its_finished_epochs(tmp_path):
    config = resolve_config(RunConfig(**SMALL, corruption="random_labels", max_epochs=10))
    with pytest.raises(KeyboardInterrupt):
        execute(config, tmp_path, device="cpu", progress=InterruptAt())
    rows = read_examples(tmp_path, config.run_id)
    assert len(rows) == 200
    assert max(r["first_fit_epoch"] or 0 for r in rows) == 2 and all(r["final_loss"] is not None for r in rows)


def test_subset_runs_record_left_out_examples_too(tmp_path):
    trained, left_out = random_subset(200, 0.7, 3, seed=0)
    assert len(trained) == 140 and sorted([*trained, *left_out]) == list(range(200))
    assert not np.array_equal(trained, random_subset(200, 0.7, 4, seed=0)[0])
    whole = RunConfig(**SMALL, max_epochs=2)
    assert RunConfig(**SMALL, max_epochs=2, subset_fraction=0.7, subset_seed=3).run_id not in (
        whole.run_id,
        RunConfig(**SMALL, max_epochs=2, subset_fraction=0.7, subset_seed=4).run_id,
    )
    outcome = execute(RunConfig(**SMALL, max_epochs=2, subset_fraction=0.7, subset_seed=3), tmp_path, device="cpu")
    rows = read_examples(tmp_path, outcome.row["run_id"])
    assert sorted(r["index"] for r in rows if r["trained"]) == trained.tolist()
    assert sorted(r["index"] for r in rows if not r["trained"]) == left_out.tolist()
    assert outcome.row["subset_fraction"] == 0.7 and outcome.row["subset_seed"] == 3
    assert outcome.row["steps"] == 2 * 5  # 140 examples, batch 32


def test_report_memorization(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import create_app

    results, out = tmp_path / "r", tmp_path / "out"
    empty = CliRunner().invoke(
        create_app(), ["report", "memorization", "--results-dir", str(results), "--out", str(out)]
    )
    assert empty.exit_code == 1 and "no completed run with random_labels" in empty.stderr
    for p in (0.2, 0.6):
        execute(
            RunConfig(**SMALL, corruption="random_labels", corrupt_prob=p, max_epochs=5, lr=0.05), results, device="cpu"
        )
    execute(
        RunConfig(**SMALL, corruption="random_labels", corrupt_prob=1.0, max_epochs=1), results, device="cpu"
    )  # p = 1: left out
    result = CliRunner().invoke(
        create_app(), ["report", "memorization", "--results-dir", str(results), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "memorization-fitted-mlp_1x512-digits.png",
        "memorization-forgetting-mlp_1x512-digits.png",
        "memorization.csv",
    ]
    from harness.reports.memorization import build

    rows, _ = build(results, out)
    assert [r["p"] for r in rows] == [0.2, 0.6]
    assert all(r["clean"] + r["corrupted"] == 200 for r in rows)
    # The final margin and the epoch an example is learned tell corrupted examples from clean ones, less
    # well when more labels are noise (five epochs are too few for forgetting events to do so).
    assert all(r["auroc_final_margin"] > 0.85 and r["auroc_learned_epoch"] > 0.8 for r in rows)
    assert rows[0]["auroc_final_margin"] > rows[1]["auroc_final_margin"]
