import copy
import math
import shutil
from dataclasses import replace

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from harness import packing
from harness.cli import create_app
from harness.config import RunConfig
from harness.data import prepare_data
from harness.executors import ExecutorSettings
from harness.packing import PackedStep, PackingWarning, execute_pack, group_packs
from harness.registry import Entry, get_registry
from harness.regularizers import build_regularizers
from harness.results import read_table
from harness.runner import check_run, execute, resolve_config
from harness.sweep import load_sweep, run_sweep
from harness.training import Training

DIGITS = dict(dataset="digits", train_size=500, test_size=100, batch_size=128, max_epochs=3)
VARIED = [
    dict(seed=0, corruption="random_labels", regularizers=("weight_decay=5e-4", "random_crop")),
    dict(seed=1, corruption="none", lr=0.02, lr_decay=0.9, regularizers=("random_crop",)),
    dict(seed=2, corruption="random_labels", corrupt_prob=0.5, momentum=0.5, regularizers=("weight_decay=1e-3",)),
]


def configs(model: str, **extra) -> list[RunConfig]:
    return [resolve_config(RunConfig(model=model, **DIGITS, **{**run, **extra})) for run in VARIED]


def epoch_rows(results_dir, run_id: str) -> list[dict]:
    table = read_table(results_dir, "epochs").to_pylist()
    return sorted((row for row in table if row["run_id"] == run_id), key=lambda row: row["epoch"])


def assert_same_training(packed: list[dict], alone: list[dict], examples: int, tolerance: float = 1e-4) -> None:
    """Losses within ``tolerance`` relative, accuracies (top-1 and top-5) within one example, epoch by epoch."""
    assert [row["epoch"] for row in packed] == [row["epoch"] for row in alone]
    for p, a in zip(packed, alone):
        for name in ("train_loss", "test_loss"):
            assert math.isclose(p[name], a[name], rel_tol=tolerance), (name, p, a)
        for name, n in (("train_acc", examples), ("test_acc", 100), ("train_top5", examples), ("test_top5", 100)):
            assert abs(p[name] - a[name]) * n <= 1 + 1e-9, (name, p, a)


def check_pack_against_alone(tmp_path, runs: list[RunConfig], tolerance: float) -> None:
    outcomes = execute_pack(runs, tmp_path / "packed", device="cpu")
    assert [o.row["pack_size"] for o in outcomes] == [len(runs)] * len(runs)
    for config, outcome in zip(runs, outcomes):
        alone = execute(config, tmp_path / "alone", device="cpu")
        assert outcome.row["run_id"] == alone.row["run_id"] == config.run_id
        assert alone.row["pack_size"] == 1 and outcome.row["status"] == "completed"
        assert outcome.row["epochs"] == alone.row["epochs"] == 3
        assert 0 <= outcome.row["test_top5"] <= outcome.row["best_test_top5"] <= 1
        assert_same_training(
            epoch_rows(tmp_path / "packed", config.run_id),
            epoch_rows(tmp_path / "alone", config.run_id),
            outcome.row["train_size"],
            tolerance,
        )


@pytest.mark.parametrize(("model", "dropout"), [("mlp_1x512", 0.5), ("alexnet", 0.3)])
def test_every_run_of_a_pack_trains_as_it_would_alone(tmp_path, model, dropout):
    runs = [RunConfig(**{**vars(c), "regularizers": (*c.regularizers, f"dropout={dropout}")}) for c in configs(model)]
    check_pack_against_alone(tmp_path, runs, 1e-4)


@pytest.mark.slow
def test_every_run_of_an_inception_pack_trains_as_it_would_alone(tmp_path):
    """BatchNorm's backward at initialization is a difference of nearly equal terms: it turns the
    float32 rounding of grouped against plain convolutions (1e-6 in the logits) into 1e-3 in the
    gradients (in float64 the packed step equals the lone one: see the next test). At Inception's
    default lr 0.1 that moves near-chance accuracies by up to 13 of 500 examples in the first epoch;
    at lr 0.01 (here) the losses stay within 1e-3 and the accuracies within one example. Slow: about
    2 minutes on a loaded 2-core CPU."""
    check_pack_against_alone(tmp_path, configs("inception", lr=0.01), 1e-3)


@pytest.mark.slow
def test_a_compiled_pack_trains_as_its_runs_alone(tmp_path):
    """torch.compile of the vectorized step (MLP 1x512, no dropout) against the runs alone, not
    compiled. Slow: compiling takes about a minute on a 2-core CPU."""
    runs = configs("mlp_1x512", compile=True)
    outcomes = execute_pack(runs, tmp_path / "packed", device="cpu")
    for config, outcome in zip(runs, outcomes):
        assert outcome.row["compile"] and outcome.row["pack_size"] == 3
        execute(RunConfig(**{**vars(config), "compile": False}), tmp_path / "alone", device="cpu")
        assert_same_training(
            epoch_rows(tmp_path / "packed", config.run_id),
            epoch_rows(tmp_path / "alone", config.run_id),
            outcome.row["train_size"],
        )


@pytest.mark.parametrize(("regularizers", "compiles"), [((), True), (("dropout=0.5",), False)])
def test_a_pack_compiles_its_step_unless_the_model_draws_dropout_masks(monkeypatch, regularizers, compiles):
    """torch.compile cannot trace the runs' own mask generators: with dropout the step stays eager."""
    compiled = []
    monkeypatch.setattr(packing, "compiled", lambda function, device: compiled.append(function) or function)
    trainings = []
    for seed in (0, 1):
        config, device = check_run(
            RunConfig(model="mlp_1x512", **DIGITS, seed=seed, regularizers=regularizers, compile=True), "cpu"
        )
        data = prepare_data("digits", seed=seed, train_size=500, test_size=100)
        trainings.append(Training(config, data, build_regularizers(regularizers), device))
    step = PackedStep(trainings)
    assert (compiled == [step.vectorized]) is compiles


@pytest.mark.parametrize(("model", "regularizers"), [("inception", ()), ("alexnet", ("dropout=0.5",))])
def test_a_packed_step_is_each_runs_own_step_in_float64(model, regularizers):
    """In float64 the rounding of grouped convolutions vanishes: one packed step gives every run the
    logits, gradients, BatchNorm statistics and dropout masks of its own step taken alone."""
    trainings = []
    for seed in (0, 1):
        config, device = check_run(RunConfig(model=model, **DIGITS, seed=seed, regularizers=regularizers), "cpu")
        training = Training(
            config,
            prepare_data("digits", seed=seed, train_size=500, test_size=100),
            build_regularizers(regularizers),
            device,
            own_generator=True,
        )
        training.model.double()
        training.batches.inputs = training.batches.inputs.double()
        trainings.append(training)
    lone = [copy.deepcopy(t.model).train() for t in trainings]
    indices = [torch.arange(32), torch.arange(32, 64)]
    step = PackedStep(trainings)
    step.set_active(trainings)
    generator_states = [t.model_generator.get_state() for t in trainings]
    logits = step.forward(torch.stack([t.batches(i) for t, i in zip(trainings, indices)]))
    logits.square().sum().backward()
    for k, (training, model) in enumerate(zip(trainings, lone)):
        torch.set_rng_state(generator_states[k])
        alone = model(training.batches(indices[k]))
        alone.square().sum().backward()
        assert torch.allclose(logits[k], alone, rtol=1e-9, atol=1e-12)
        for own, reference in zip(training.model.parameters(), model.parameters()):
            assert torch.allclose(own.grad, reference.grad, rtol=1e-8, atol=1e-12)
        for own, reference in zip(training.model.buffers(), model.buffers()):
            assert torch.allclose(own.double(), reference.double(), rtol=1e-9, atol=1e-12)


def test_runs_differ_within_a_pack(tmp_path):
    """Same data, model and schedule, seeds 0 and 1: their own initializations and batch orders."""
    runs = [resolve_config(RunConfig(model="mlp_1x512", **{**DIGITS, "max_epochs": 1}, seed=seed)) for seed in (0, 1)]
    rows = [o.row for o in execute_pack(runs, tmp_path, device="cpu")]
    assert rows[0]["train_loss"] != rows[1]["train_loss"]


def test_a_run_that_stops_is_stored_at_once_and_the_others_go_on(tmp_path):
    """Seed 0 fits 64 true-label digits in a few epochs; the random-label run goes on to its limit."""
    base = dict(model="mlp_1x512", dataset="digits", train_size=64, test_size=50, batch_size=32, max_epochs=40, lr=0.1)
    runs = [
        resolve_config(RunConfig(**base)),
        resolve_config(RunConfig(**base, corruption="random_labels", lr_decay=0.5)),
    ]
    landed = []
    outcomes = execute_pack(
        runs,
        tmp_path,
        device="cpu",
        on_outcome=lambda config, outcome: landed.append((config.run_id, outcome.row["epochs"])),
    )
    fitted, limited = outcomes[0].row, outcomes[1].row
    assert fitted["fit_epoch"] == fitted["epochs"] < 40 and limited["epochs"] == 40 and limited["fit_epoch"] is None
    assert landed == [(runs[0].run_id, fitted["epochs"]), (runs[1].run_id, 40)]
    assert len(epoch_rows(tmp_path, runs[0].run_id)) == fitted["epochs"]
    alone = execute(runs[0], tmp_path / "alone", device="cpu").row
    assert alone["fit_epoch"] == fitted["fit_epoch"]
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


class StopAfter(Exception):
    pass


def test_an_interrupted_pack_resumes_packed_or_alone(tmp_path, monkeypatch):
    """Ctrl-C after epoch 2 stores both runs as interrupted with their checkpoints; resumed packed or
    alone, each ends as a run trained alone without interruption (dropout masks included)."""
    runs = [
        RunConfig(**{**vars(c), "max_epochs": 4, "regularizers": ("dropout=0.5",)}) for c in configs("mlp_1x512")[:2]
    ]
    original = packing.Training.end_epoch

    def interrupt_after_two(self, epoch, *args, **kwargs):
        row = original(self, epoch, *args, **kwargs)
        if epoch == 2 and self.config.run_id == runs[-1].run_id:
            raise KeyboardInterrupt
        return row

    monkeypatch.setattr(packing.Training, "end_epoch", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        execute_pack(runs, tmp_path / "a", device="cpu")
    monkeypatch.undo()
    interrupted = read_table(tmp_path / "a", "runs").to_pylist()
    assert sorted((r["status"], r["epochs"]) for r in interrupted) == [("interrupted", 2), ("interrupted", 2)]
    for folder in ("b", "c"):
        shutil.copytree(tmp_path / "a" / "checkpoints", tmp_path / folder / "checkpoints")
    resumed_packed = execute_pack(runs, tmp_path / "b", device="cpu")
    resumed_alone = [execute(config, tmp_path / "c", device="cpu") for config in runs]
    for config, packed, alone in zip(runs, resumed_packed, resumed_alone):
        assert packed.row["resumed_from_epoch"] == alone.row["resumed_from_epoch"] == 2
        execute(config, tmp_path / "d", device="cpu")
        for results in ("b", "c"):
            assert_same_training(
                epoch_rows(tmp_path / results, config.run_id)[2:],
                epoch_rows(tmp_path / "d", config.run_id)[2:],
                packed.row["train_size"],
            )


class DataDependent(nn.Module):
    """A model with data-dependent control flow, which vmap cannot trace."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.linear = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x):
        logits = self.linear(x.flatten(1))
        return logits if logits.sum() > 0 else -logits


def test_a_model_that_cannot_be_vectorized_trains_one_at_a_time_with_one_warning(tmp_path, monkeypatch):
    entry = Entry("models", "data_dependent", DataDependent, "test", {"default_lr": 0.01})
    monkeypatch.setitem(get_registry()._entries["models"], "data_dependent", entry)
    runs = [resolve_config(RunConfig(model="data_dependent", **{**DIGITS, "max_epochs": 1}, seed=s)) for s in (0, 1)]
    with pytest.warns(PackingWarning, match=r"model data_dependent cannot be trained in a pack \(.+\); its 2 runs"):
        outcomes = execute_pack(runs, tmp_path, device="cpu")
    assert [o.row["status"] for o in outcomes] == ["completed", "completed"]
    assert [o.row["pack_size"] for o in outcomes] == [1, 1]


def test_packs_group_runs_that_share_model_data_and_schedule():
    runs = [
        resolve_config(RunConfig(model=m, dataset="digits", seed=s, regularizers=r))
        for m in ("mlp_1x512", "alexnet")
        for s in (0, 1, 2)
        for r in ((), ("early_stopping",))
    ]
    packs = group_packs(runs, 2)
    assert [len(p) for p in packs] == [2, 2, 1, 1, 2, 2, 1, 1]
    for pack in packs:
        assert len({packing.pack_key(c) for c in pack}) == 1
    assert sorted(c.run_id for p in packs for c in p) == sorted(c.run_id for c in runs)


SPEC = """pack = 2
[grid]
plugin = ["mlp_1x512"]
seed = [0, 1, 2]
[overrides]
dataset = "digits"
train_size = 100
test_size = 50
epochs = 1
"""


def test_a_sweep_trains_its_packs_as_tasks_and_counts_runs(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    progress = []
    summary = run_sweep(
        replace(load_sweep(spec), pack=2),
        ExecutorSettings(results_dir=tmp_path / "r", device="cpu"),
        on_progress=progress.append,
    )
    assert summary.count("completed") == 3
    assert all(c["queued"] + c["running"] + c["done"] == 3 for c in progress) and progress[-1]["done"] == 3
    rows = read_table(tmp_path / "r", "runs").to_pylist()
    assert sorted(r["pack_size"] for r in rows) == [1, 2, 2] and {r["status"] for r in rows} == {"completed"}


def test_pack_on_the_command_line_wins_and_the_cpu_gets_one_note(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    app, results = create_app(), tmp_path / "r"
    result = CliRunner().invoke(
        app, ["sweep", str(spec), "--results-dir", str(results), "--device", "cpu", "--pack", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "3 runs in packs of 3" in " ".join(result.output.split())
    notes = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert notes == [
        "warning: --pack 3 on the CPU: packed runs train slower there than one after another (packing is for GPUs)"
    ]
    assert [r["pack_size"] for r in read_table(results, "runs").to_pylist()] == [3, 3, 3]
    spec.write_text(SPEC.replace("pack = 2", "pack = 0"))
    result = CliRunner().invoke(app, ["sweep", str(spec), "--results-dir", str(results)])
    assert result.exit_code == 2 and "pack must be a whole number of runs, at least 1, got 0" in result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_pack_on_cuda_trains_as_its_runs_alone(tmp_path, precision):
    """Without dropout (on CUDA a run alone draws its masks with the fused kernel, a pack with bernoulli)."""
    runs = [RunConfig(**{**vars(c), "precision": precision}) for c in configs("alexnet")]
    outcomes = execute_pack(runs, tmp_path / "packed", device="cuda")
    for config, outcome in zip(runs, outcomes):
        execute(config, tmp_path / "alone", device="cuda")
        assert outcome.row["pack_size"] == 3 and outcome.row["device"].startswith("cuda")
        assert_same_training(
            epoch_rows(tmp_path / "packed", config.run_id),
            epoch_rows(tmp_path / "alone", config.run_id),
            outcome.row["train_size"],
            1e-4 if precision == "fp32" else 1e-2,
        )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_compiled_pack_on_cuda_trains_as_its_runs_alone(tmp_path):
    """--compile: the vectorized step under torch.compile with CUDA graphs against each run alone,
    compiled too (MLP 1x512: it compiles in seconds)."""
    runs = configs("mlp_1x512", compile=True)
    outcomes = execute_pack(runs, tmp_path / "packed", device="cuda")
    for config, outcome in zip(runs, outcomes):
        execute(config, tmp_path / "alone", device="cuda")
        assert outcome.row["pack_size"] == 3 and outcome.row["compile"]
        assert_same_training(
            epoch_rows(tmp_path / "packed", config.run_id),
            epoch_rows(tmp_path / "alone", config.run_id),
            outcome.row["train_size"],
            1e-3,
        )


def test_memorization_models_train_in_packs(tmp_path):
    args = [
        "memorization",
        "--plugin",
        "mlp_1x512",
        "--dataset",
        "digits",
        "--train-size",
        "100",
        "--test-size",
        "20",
        "--models",
        "3",
        "--max-epochs",
        "1",
        "--batch-size",
        "50",
        "--device",
        "cpu",
        "--results-dir",
        str(tmp_path),
        "--pack",
        "3",
    ]
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 0, result.output
    assert "100 examples, 3 models" in " ".join(result.stdout.split())
    assert [r["pack_size"] for r in read_table(tmp_path, "runs").to_pylist()] == [3, 3, 3]
