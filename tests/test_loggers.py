"""Loggers (``--log``): the built-in TensorBoard and MLflow loggers read back with the trackers' own
readers, and a third-party logger installed through an entry point."""

import json
import socket
import textwrap
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
from plugin_packages import install_packages
from test_runner import SMALL, InterruptAt
from typer.testing import CliRunner

from harness.cli import create_app
from harness.config import RunConfig
from harness.executors import ExecutorSettings
from harness.loggers import LoggerWarning
from harness.registry import get_registry
from harness.runner import execute, resolve_config
from harness.sweep import load_sweep, run_sweep

RECORDER = """
import json
from harness import hookimpl

class Recorder:
    '''Appends every event it receives, as one JSON line, to the file URI.'''

    def __init__(self, path):
        self.path = path

    def write(self, **event):
        with open(self.path, "a") as file:
            file.write(json.dumps(event, default=str) + "\\n")

    @hookimpl
    def run_started(self, run_id, config, resumed_from_epoch, sweep):
        self.write(event="run_started", run_id=run_id, seed=config.seed, resumed_from_epoch=resumed_from_epoch, sweep=sweep)

    @hookimpl
    def epoch_finished(self, run_id, row):
        self.write(event="epoch_finished", run_id=run_id, row=row)

    @hookimpl
    def run_finished(self, run_id, row):
        self.write(event="run_finished", run_id=run_id, row=row)

class Raiser:
    '''Raises in the event URI, after trying to change the row it was given.'''

    def __init__(self, event):
        self.event = event

    def fail(self, event, row=None):
        if row is not None:
            row["train_acc"] = -1.0
        if event == self.event:
            raise RuntimeError(f"tracker down in {event}")

    @hookimpl
    def run_started(self):
        self.fail("run_started")

    @hookimpl
    def epoch_finished(self, row):
        self.fail("epoch_finished", row)

    @hookimpl
    def run_finished(self, row):
        self.fail("run_finished", row)

@hookimpl
def register_loggers(register):
    register("recorder", Recorder)
    register("raiser", Raiser)
"""


EAGER = """
from harness import hookimpl

@hookimpl
def run_started(run_id):  # a run event on the module, not on a logger: it would observe every run
    raise AssertionError("never called")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    packages = {"harness-recorder": ("harness_recorder", RECORDER), "harness-eager": ("harness_eager", EAGER)}
    return install_packages(tmp_path_factory.mktemp("loggers"), packages)


@pytest.fixture
def third_party(site, monkeypatch):
    """The recorder package installed and on the path, in a registry built afresh (and again after the test)."""
    monkeypatch.syspath_prepend(str(site))
    get_registry.cache_clear()
    assert "recorder" in get_registry().names("loggers")
    yield
    get_registry.cache_clear()


def read_events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def table(results, name, run_id):
    return pq.read_table(results / name / f"{run_id}.parquet").to_pylist()


def write_spec(path, log, seeds=(0, 1)):
    path.write_text(
        textwrap.dedent(f"""
        log = {json.dumps(log)}
        [grid]
        seed = {list(seeds)}
        [overrides]
        plugin = "mlp_1x512"
        dataset = "digits"
        corruption = "random_labels"
        train_size = 200
        test_size = 100
        batch_size = 32
        epochs = 2
        """)
    )
    return path


def test_tensorboard_scalars_of_an_interrupted_and_resumed_run_equal_the_epochs_table(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    config = resolve_config(
        RunConfig(**{**SMALL, "max_epochs": 5, "corruption": "random_labels"}, regularizers=("early_stopping=10",))
    )
    with pytest.raises(KeyboardInterrupt):
        execute(config, tmp_path, device="cpu", progress=InterruptAt(3, 2), log=("tensorboard",))
    row = execute(config, tmp_path, device="cpu", log=("tensorboard",)).row
    assert row["status"] == "completed" and row["resumed_from_epoch"] == 2 and row["logger_errors"] == 0

    events = EventAccumulator(str(tmp_path / "tensorboard" / config.run_id), size_guidance={SCALARS: 0})
    events.Reload()
    epochs = table(tmp_path, "epochs", config.run_id)
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5] and epochs[0]["holdout_acc"] is not None
    for column, tag in [
        ("train_loss", "train/loss"),
        ("train_acc", "train/acc"),
        ("test_loss", "test/loss"),
        ("test_acc", "test/acc"),
        ("holdout_loss", "holdout/loss"),
        ("holdout_acc", "holdout/acc"),
        ("lr", "lr"),
    ]:
        logged = [(scalar.step, scalar.value) for scalar in events.Scalars(tag)]
        assert logged == [(e["epoch"], np.float32(e[column])) for e in epochs], tag
    assert events.Scalars("final/test_acc")[-1].value == np.float32(row["test_acc"])


def test_mlflow_sweep_of_three_runs_reads_back_equal_to_the_tables(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this opt-in to a file store
    store = f"file:{tmp_path / 'mlruns'}"
    spec = write_spec(tmp_path / "three-seeds.toml", [f"mlflow={store}"], seeds=(0, 1, 2))
    result = CliRunner().invoke(
        create_app(), ["sweep", str(spec), "--results-dir", str(tmp_path / "r"), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("three-seeds")
    runs = {run.data.tags["harness.run_id"]: run for run in client.search_runs([experiment.experiment_id])}
    assert runs.keys() == {config.run_id for config in load_sweep(spec).configs}
    for run_id, run in runs.items():
        row = table(tmp_path / "r", "runs", run_id)[0]
        params = run.data.params
        logged = ("model", "dataset", "corruption", "seed", "train_size", "test_size", "batch_size", "max_epochs")
        assert {k: params[k] for k in (*logged, "regularizers")} == {
            **{k: str(row[k]) for k in logged},
            "regularizers": "none",
        }
        assert float(params["lr"]) == row["lr"] and float(params["corrupt_prob"]) == row["corrupt_prob"]
        assert run.info.status == "FINISHED" and run.data.tags["harness.status"] == "completed"
        assert run.data.metrics["best_test_acc"] == row["best_test_acc"] and run.data.metrics["steps"] == row["steps"]
        epochs = table(tmp_path / "r", "epochs", run_id)
        for column in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, column))
            assert history == [(e["epoch"], e[column]) for e in epochs], column


def test_an_unreachable_tracking_server_leaves_the_run_completed_with_one_warning(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [
        "run",
        "--plugin",
        "mlp_1x512",
        "--dataset",
        "digits",
        "--train-size",
        "200",
        "--test-size",
        "100",
        "--max-epochs",
        "2",
        "--device",
        "cpu",
        "--results-dir",
        str(tmp_path),
        "--log",
        f"mlflow=http://127.0.0.1:{port}",
    ]
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "logger mlflow" in warnings[0] and "cannot be reached" in warnings[0]
    [row] = [r for r in pq.read_table(tmp_path / "runs").to_pylist()]
    assert row["status"] == "completed" and row["epochs"] == 2 and row["logger_errors"] == 1


def test_an_unknown_logger_is_one_line_listing_the_known_ones(tmp_path):
    result = CliRunner().invoke(
        create_app(),
        ["run", "--plugin", "mlp_1x512", "--dataset", "digits", "--log", "wandb", "--results-dir", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown logger 'wandb'; known: mlflow, tensorboard"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "log, message",
    [
        ('"tensorboard"', 'log must be a list of "NAME[=URI]" strings'),
        ('["nope"]', "unknown logger 'nope'; known: mlflow, tensorboard"),
        ('["mlflow="]', "--log must be NAME or NAME=URI, got 'mlflow='"),
    ],
)
def test_a_bad_log_in_a_spec_fails_before_anything_runs(tmp_path, log, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(f'log = {log}\n[overrides]\nplugin = "mlp_1x512"\ndataset = "digits"\n')
    result = CliRunner().invoke(create_app(), ["sweep", str(spec), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "r").exists()


def test_log_is_no_part_of_the_run_id(tmp_path):
    logged = load_sweep(write_spec(tmp_path / "logged.toml", ["tensorboard", "mlflow=file:x"])).configs
    plain = load_sweep(write_spec(tmp_path / "plain.toml", [])).configs
    assert [c.run_id for c in logged] == [c.run_id for c in plain]


@pytest.mark.parametrize("jobs, pack", [(2, 1), (1, 2)], ids=["two-workers", "packed"])
def test_a_third_party_logger_receives_every_event_of_a_sweep_in_its_workers(tmp_path, third_party, jobs, pack):
    events_file = tmp_path / "events.jsonl"
    sweep = load_sweep(write_spec(tmp_path / "seeds.toml", [f"recorder={events_file}"]))
    summary = run_sweep(
        replace(sweep, pack=pack), ExecutorSettings(results_dir=tmp_path / "r", device="cpu", jobs=jobs)
    )
    assert summary.count("completed") == 2
    assert [table(tmp_path / "r", "runs", c.run_id)[0]["pack_size"] for c in sweep.configs] == [pack, pack]
    events = read_events(events_file)
    for config in sweep.configs:
        mine = [e for e in events if e["run_id"] == config.run_id]
        assert [e["event"] for e in mine] == ["run_started", "epoch_finished", "epoch_finished", "run_finished"]
        assert mine[0] == {
            "event": "run_started",
            "run_id": config.run_id,
            "seed": config.seed,
            "resumed_from_epoch": 0,
            "sweep": "seeds",
        }
        assert [e["row"] for e in mine[1:3]] == table(tmp_path / "r", "epochs", config.run_id)
        row = table(tmp_path / "r", "runs", config.run_id)[0]
        assert mine[3]["row"]["status"] == "completed" and mine[3]["row"]["test_acc"] == row["test_acc"]
        assert set(mine[3]["row"]) == set(row) and row["logger_errors"] == 0


def test_run_events_on_a_plugin_module_make_it_fail_to_load(third_party):
    [warning] = [w for w in get_registry().warnings if "harness-eager" in w]
    assert "harness-eager 1.2.3 failed to load: it implements unknown hook(s) run_started;" in warning


def test_a_run_resumed_from_its_checkpoint_sends_every_epoch_once(tmp_path, third_party, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    events_file, store = tmp_path / "events.jsonl", f"file:{tmp_path / 'mlruns'}"
    log = (f"recorder={events_file}", f"mlflow={store}")
    config = resolve_config(RunConfig(**{**SMALL, "max_epochs": 5, "corruption": "random_labels"}))
    with pytest.raises(KeyboardInterrupt):
        execute(config, tmp_path, device="cpu", progress=InterruptAt(3, 2), log=log)
    execute(config, tmp_path, device="cpu", log=log)
    events = read_events(events_file)
    assert [
        (e["event"], e.get("resumed_from_epoch"), e["row"]["status"] if e["event"] == "run_finished" else None)
        for e in events
        if e["event"] != "epoch_finished"
    ] == [
        ("run_started", 0, None),
        ("run_finished", None, "interrupted"),
        ("run_started", 2, None),
        ("run_finished", None, "completed"),
    ]
    assert [e["row"] for e in events if e["event"] == "epoch_finished"] == table(tmp_path, "epochs", config.run_id)
    assert [e["row"]["epoch"] for e in events if e["event"] == "epoch_finished"] == [1, 2, 3, 4, 5]
    client = MlflowClient(tracking_uri=store)
    [run] = client.search_runs([client.get_experiment_by_name("harness").experiment_id])  # continued, not a second
    assert run.info.status == "FINISHED" and run.data.params["max_epochs"] == "5"
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "test_loss"))
    assert history == [(e["epoch"], e["test_loss"]) for e in table(tmp_path, "epochs", config.run_id)]


RAISED = dict(SMALL, max_epochs=3, corruption="random_labels")


@pytest.fixture(scope="module")
def plain_results(tmp_path_factory):
    """A run with no logger (the installed ones do nothing unasked)."""
    results = tmp_path_factory.mktemp("plain")
    assert execute(RunConfig(**RAISED), results, device="cpu").row["logger_errors"] == 0
    return results


@pytest.mark.parametrize("event", ["run_started", "epoch_finished", "run_finished"])
def test_a_logger_that_raises_changes_no_stored_result(tmp_path, plain_results, third_party, event):
    config = resolve_config(RunConfig(**RAISED))
    with pytest.warns(LoggerWarning, match=f"logger raiser \\(harness-recorder 1.2.3\\) failed in {event}"):
        raised = execute(config, tmp_path / "raised", device="cpu", log=(f"raiser={event}",)).row
    assert raised["status"] == "completed" and raised["logger_errors"] == 1
    volatile = {"wall_seconds", "started_at", "logger_errors"}
    for name in ("runs", "epochs", "examples"):
        plain_rows, raised_rows = (
            table(folder, name, config.run_id) for folder in (plain_results, tmp_path / "raised")
        )
        assert without(raised_rows, volatile) == without(plain_rows, volatile), name


def without(rows, columns):
    return [{k: v for k, v in row.items() if k not in columns} for row in rows]


def test_a_pack_that_falls_back_to_one_run_at_a_time_tells_each_logger_once(tmp_path, third_party, monkeypatch):
    """The loggers hear of a pack's runs only once its first packed step worked: a model that cannot be
    vectorized starts each run once, alone."""
    from test_packing import DataDependent

    from harness.packing import PackingWarning, execute_pack
    from harness.registry import Entry

    entry = Entry("models", "data_dependent", DataDependent, "test", {"default_lr": 0.01})
    monkeypatch.setitem(get_registry()._entries["models"], "data_dependent", entry)
    settings = {**SMALL, "model": "data_dependent", "max_epochs": 2}
    runs = [resolve_config(RunConfig(**{**settings, "seed": seed})) for seed in (0, 1)]
    events_file = tmp_path / "events.jsonl"
    with pytest.warns(PackingWarning):
        execute_pack(runs, tmp_path / "r", device="cpu", log=(f"recorder={events_file}",))
    for config in runs:
        mine = [e["event"] for e in read_events(events_file) if e["run_id"] == config.run_id]
        assert mine == ["run_started", "epoch_finished", "epoch_finished", "run_finished"]
