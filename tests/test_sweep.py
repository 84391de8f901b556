import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from harness.cli import create_app
from harness.config import RunConfig
from harness.executors import ExecutorSettings
from harness.results import read_row
from harness.sweep import Sweep, SweepSpecError, expand, load_sweep, run_sweep

DIGITS = {"dataset": "digits", "train_size": 100, "test_size": 50, "batch_size": 25}


def write_spec(path, grid: str, overrides: dict = DIGITS, extra: str = ""):
    lines = [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in overrides.items()]
    path.write_text(f"{grid}\n{extra}\n[overrides]\n" + "\n".join(lines) + "\n")
    return path


def test_sweep_keys_are_exactly_the_run_commands_options():
    import typer

    from harness.sweep import MACHINE_OPTIONS, OPTION_TO_FIELD

    run = typer.main.get_command(create_app()).commands["run"]
    options = {param.name for param in run.params} - set(MACHINE_OPTIONS)
    keys = set(OPTION_TO_FIELD) - {"regularizers"} | {"regularizer"}
    assert keys == options, "a `harness run` option is missing from the sweep keys (harness/sweep.py), or one too many"
    assert all(hasattr(RunConfig(model="m"), field) for field in OPTION_TO_FIELD.values())


def test_grid_times_overrides_gives_every_combination():
    spec = {
        "grid": {
            "plugin": ["mlp_1x512", "alexnet"],
            "corruption": ["none", "random_labels"],
            "regularizers": [[], ["weight_decay=5e-4", "random_crop"]],
            "seed": [0, 1],
        },
        "overrides": {"dataset": "cifar10", "train_size": 2000, "epochs": 60},
    }
    configs = expand(spec)
    assert len(configs) == 16 and len({c.run_id for c in configs}) == 16
    assert configs[0] == RunConfig(
        model="mlp_1x512", corruption="none", regularizers=(), seed=0, dataset="cifar10", train_size=2000, max_epochs=60
    )
    assert {c.regularizers for c in configs} == {(), ("weight_decay=5e-4", "random_crop")}
    assert {(c.dataset, c.train_size, c.max_epochs) for c in configs} == {("cifar10", 2000, 60)}


def test_epochs_is_the_old_name_of_max_epochs_and_keeps_the_run_ids():
    old = expand({"overrides": {"plugin": "mlp_1x512", "epochs": 60}})
    new = expand({"overrides": {"plugin": "mlp_1x512", "max_epochs": 60}})
    assert old == new and old[0].max_epochs == 60
    with pytest.raises(SweepSpecError, match="epochs and max_epochs name one option"):
        expand({"grid": {"epochs": [1]}, "overrides": {"plugin": "mlp_1x512", "max_epochs": 2}})


def test_several_grids_are_united_once_each():
    grid = {"plugin": ["mlp_1x512"], "corruption": ["none", "gaussian"]}
    configs = expand({"grid": [grid, {"plugin": ["mlp_1x512"], "corruption": ["none"]}]})
    assert [c.corruption for c in configs] == ["none", "gaussian"]


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"grid": {"plugin": ["mlp_1x512"], "epoch": [1]}},
            "unknown key(s) epoch in [grid]; known: plugin, corruption",
        ),
        (
            {"grid": {"plugin": ["mlp_1x512"]}, "overrides": {"lr_schedule": 1}},
            "unknown key(s) lr_schedule in [overrides]",
        ),
        ({"grid": {"plugin": ["mlp_1x512"]}, "runs": {}}, "unknown key(s) runs in the top level"),
        ({"grid": {"plugin": "mlp_1x512"}}, "[grid] plugin must be a non-empty list"),
        ({"grid": {"plugin": ["mlp_1x512"], "seed": [0]}, "overrides": {"seed": 1}}, "seed set in both"),
        ({"grid": {"seed": [0]}}, "every run needs a plugin"),
    ],
)
def test_bad_spec_is_a_clear_error(spec, message):
    with pytest.raises(SweepSpecError, match=None) as error:
        expand(spec)
    assert message in str(error.value)


def test_bad_names_fail_before_anything_runs(tmp_path):
    spec = write_spec(tmp_path / "s.toml", '[grid]\nplugin = ["mlp_1x512", "nope"]')
    with pytest.raises(Exception, match="unknown model 'nope'"):
        load_sweep(spec)
    result = CliRunner().invoke(create_app(), ["sweep", str(spec), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown model 'nope'" in result.stderr


def test_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    spec = write_spec(
        tmp_path / "s.toml",
        '[grid]\nplugin = ["inception", "mlp_1x512"]\nregularizers = [["dropout=0.5"]]',
        {**DIGITS, "epochs": 1},
    )
    result = CliRunner().invoke(
        create_app(), ["sweep", str(spec), "--results-dir", str(tmp_path / "r"), "--device", "cpu"]
    )
    assert result.exit_code == 1
    assert "1 completed, 0 skipped, 1 failed" in " ".join(result.output.split())
    rows = {
        r["model"]: r for r in (pq.read_table(p).to_pylist()[0] for p in (tmp_path / "r" / "runs").glob("*.parquet"))
    }
    assert rows["inception"]["status"] == "failed" and "does not support 'dropout'" in rows["inception"]["error"]
    assert rows["mlp_1x512"]["status"] == "completed"


def run_files(results_dir):
    return {p.name: p.stat().st_mtime_ns for p in (results_dir / "runs").glob("*.parquet")}


def statuses(results_dir):
    rows = {p.stem: read_row(results_dir, "runs", p.stem) for p in (results_dir / "runs").glob("*.parquet")}
    return {run_id: row["status"] for run_id, row in rows.items()}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def sweep_command(spec, results, jobs: int) -> list[str]:
    """``harness sweep SPEC`` on the CPU with ``jobs`` workers, as a process of its own would run it."""
    return [
        sys.executable,
        "-c",
        "from harness.cli import main; main()",
        "sweep",
        str(spec),
        "--results-dir",
        str(results),
        "--device",
        "cpu",
        "--jobs",
        str(jobs),
    ]


@pytest.mark.parametrize(
    "jobs, stop",
    [(1, signal.SIGINT), (2, signal.SIGINT), (2, signal.SIGTERM)],
    ids=["ctrl-c", "ctrl-c-2-jobs", "sigterm-2-jobs"],
)
def test_interrupted_sweep_resumes_without_redoing_completed_runs(tmp_path, jobs, stop):
    """Ctrl-C, or SIGTERM to the process group (a scheduler's stop): the runs are stored, no worker is left."""
    spec = write_spec(
        tmp_path / "s.toml",
        '[grid]\nplugin = ["mlp_1x512"]\nseed = [0, 1, 2, 3, 4, 5]',
        {**DIGITS, "corruption": "random_labels", "epochs": 8},
    )
    results = tmp_path / "r"
    command = sweep_command(spec, results, jobs)
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300  # generous: worker start-up is slow on a loaded machine
    while (
        process.poll() is None
        and len(run_files(results) if (results / "runs").is_dir() else {}) < 2
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    os.killpg(process.pid, stop)  # the whole process group, as Ctrl-C in a terminal does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    assert b"run the same command again to resume" in stderr
    deadline = time.monotonic() + 30
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(process.pid), "worker processes outlived the sweep"
    before = {
        name: mtime
        for name, mtime in run_files(results).items()
        if statuses(results)[name.removesuffix(".parquet")] == "completed"
    }
    assert 2 <= len(before) < 6

    summary = run_sweep(load_sweep(spec), ExecutorSettings(results_dir=results, device="cpu"))
    assert summary.count("skipped") == len(before) and summary.count("completed") == 6 - len(before)
    after = run_files(results)
    assert {name: after[name] for name in before} == before
    assert set(statuses(results).values()) == {"completed"} and len(after) == 6
    assert not [p for p in results.rglob("*") if p.is_file() and not p.name.endswith(".parquet")]


def test_parallel_jobs_give_the_same_results(tmp_path):
    spec = write_spec(
        tmp_path / "s.toml",
        '[grid]\nplugin = ["mlp_1x512"]\ncorruption = ["none", "random_labels"]',
        {**DIGITS, "epochs": 2},
    )
    configs = load_sweep(spec).configs
    serial = run_sweep(Sweep(configs=configs), ExecutorSettings(results_dir=tmp_path / "a", device="cpu", jobs=1))
    parallel = run_sweep(Sweep(configs=configs), ExecutorSettings(results_dir=tmp_path / "b", device="cpu", jobs=2))
    assert serial.count("completed") == parallel.count("completed") == 2
    a = {r.config.run_id: r.row for r in serial.results}
    b = {r.config.run_id: r.row for r in parallel.results}
    assert a.keys() == b.keys()
    for run_id in a:
        assert a[run_id]["train_acc"] == b[run_id]["train_acc"] and a[run_id]["test_acc"] == b[run_id]["test_acc"]
        assert a[run_id]["train_loss"] == pytest.approx(b[run_id]["train_loss"], rel=1e-5)


def test_shipped_specs_expand(tmp_path):
    root = os.path.join(os.path.dirname(__file__), "..", "sweeps")
    counts = {name: len(load_sweep(os.path.join(root, name)).configs) for name in sorted(os.listdir(root))}
    assert counts["table1.toml"] == counts["table1-cpu.toml"] == 19
    assert counts["fig1a.toml"] == 5 and counts["fig1bc.toml"] == 18 and counts["fig2b.toml"] == 2


def pool_workers(pid: int) -> list[int]:
    """Process ids of the worker processes (not the resource tracker) that ``pid`` spawned."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if parent == pid and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def checkpoint_epochs(results):
    return {
        p.stem: len(torch.load(p, weights_only=True)["values"]["history"])
        for p in (results / "checkpoints").glob("*.pt")
    }


def wait_for(condition, process, seconds=120):
    deadline = time.monotonic() + seconds
    while process.poll() is None and not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_killed_worker_and_interrupted_sweep_resume_from_checkpoints(tmp_path):
    spec = write_spec(
        tmp_path / "s.toml",
        '[grid]\nplugin = ["mlp_1x512"]\nseed = [0, 1, 2, 3]',
        {**DIGITS, "train_size": 1000, "corruption": "random_labels", "epochs": 25},
    )
    results = tmp_path / "r"
    command = sweep_command(spec, results, 2)

    # 1. A worker dies mid-run (SIGKILL): its run and the pool's other run are not completed.
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    wait_for(lambda: (results / "checkpoints").is_dir() and any((results / "checkpoints").glob("*.pt")), sweep)
    os.kill(pool_workers(sweep.pid)[0], signal.SIGKILL)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 1, stderr.decode()
    assert "worker process died" in stderr.decode()
    first = statuses(results)
    assert "failed" in first.values() and "completed" not in first.values()

    # 2. The sweep runs again and is interrupted (Ctrl-C to its process group) once a run completed.
    resumable = checkpoint_epochs(results)
    assert resumable
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    wait_for(lambda: "completed" in statuses(results).values(), sweep)
    os.killpg(sweep.pid, signal.SIGINT)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, stderr.decode()
    done_before = {
        run_id: mtime
        for run_id, mtime in run_files(results).items()
        if statuses(results)[run_id.removesuffix(".parquet")] == "completed"
    }
    rows = {p.stem: read_row(results, "runs", p.stem) for p in (results / "runs").glob("*.parquet")}
    # The runs with checkpoints come first in the sweep, so they were started again, and went on from them.
    restarted = {run_id: epochs for run_id, epochs in resumable.items() if rows[run_id]["status"] != "failed"}
    assert restarted and all(rows[run_id]["resumed_from_epoch"] == epochs for run_id, epochs in restarted.items())

    # 3. Once more, to the end: completed runs are not touched, the others resume from their checkpoints.
    resumable = checkpoint_epochs(results)
    summary = run_sweep(load_sweep(spec), ExecutorSettings(results_dir=results, device="cpu", jobs=2))
    assert summary.count("skipped") == len(done_before) and not summary.failed
    assert set(statuses(results).values()) == {"completed"} and len(statuses(results)) == 4
    assert {name: run_files(results)[name] for name in done_before} == done_before
    rows = {p.stem: read_row(results, "runs", p.stem) for p in (results / "runs").glob("*.parquet")}
    for run_id, epochs in resumable.items():
        assert rows[run_id]["resumed_from_epoch"] == epochs
    assert not [p for p in results.rglob("*") if p.is_file() and p.suffix != ".parquet"]
