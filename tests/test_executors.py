"""Sweep executors: option checks, completed-run filtering, GPU slots, submitit (local processes and
its mocked Slurm) and Ray (a real local instance)."""

import importlib.util
import os
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from harness import sweep
from harness.cli import create_app
from harness.config import RunConfig
from harness.executors import (
    ExecutorError,
    ExecutorSettings,
    Pack,
    gpu_groups,
    gpu_slots,
    make_executor,
    parse_option,
)
from harness.registry import get_registry
from harness.runner import resolve_config
from harness.sweep import Sweep, load_sweep, run_sweep, sweep_status

HAVE_SUBMITIT = importlib.util.find_spec("submitit") is not None
HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_submitit = pytest.mark.skipif(not HAVE_SUBMITIT, reason="submitit not installed: pip install 'harness[slurm]'")
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray not installed: pip install 'harness[ray]'")

TINY = dict(model="mlp_1x512", dataset="digits", train_size=100, test_size=50, batch_size=25, max_epochs=2)


def tiny_configs(seeds):
    return [resolve_config(RunConfig(seed=seed, **TINY)) for seed in seeds]


def stored_statuses(results_dir):
    return {p.stem: pq.read_table(p).column("status")[0].as_py() for p in (results_dir / "runs").glob("*.parquet")}


def test_builtin_executors_are_registered_through_the_hook():
    entries = {e.name: e for e in get_registry().entries("executors")}
    assert set(entries) >= {"local", "submitit", "ray"}
    assert entries["submitit"].info == {"engine": "submitit", "extra": "slurm"}
    assert entries["ray"].info == {"engine": "ray", "extra": "ray"}


def test_unknown_executor_and_options_are_clear_errors(tmp_path):
    settings = ExecutorSettings(results_dir=tmp_path)
    with pytest.raises(ExecutorError, match="unknown executor 'slurmish'; known: local, ray, submitit"):
        make_executor("slurmish", settings)
    with pytest.raises(ExecutorError, match="unknown option.s. workers for executor 'local'; known: $"):
        make_executor("local", settings, {"workers": 2})


def test_missing_engine_names_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(
        ExecutorError, match=r"executor 'ray' needs ray, which is not installed: pip install 'harness\[ray\]'"
    ):
        make_executor("ray", ExecutorSettings(results_dir=tmp_path))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("timeout_min=60", ("timeout_min", 60)),
        ("slurm_partition=gpu", ("slurm_partition", "gpu")),
        ("mem_gb=7.5", ("mem_gb", 7.5)),
        ("stderr_to_stdout=true", ("stderr_to_stdout", True)),
        ('slurm_additional_parameters={constraint = "a100"}', ("slurm_additional_parameters", {"constraint": "a100"})),
        ("address=ray://head:10001", ("address", "ray://head:10001")),
    ],
)
def test_options_are_read_as_toml_values(text, expected):
    assert parse_option(text) == expected


def test_gpu_slots_spread_runs_over_gpus_first():
    assert gpu_slots(["0", "1"], 1) == ["0", "1"]
    assert gpu_slots(["2", "5"], 3) == ["2", "5", "2", "5", "2", "5"]
    with pytest.raises(ExecutorError, match="at least 1"):
        gpu_slots(["0"], 0)


def test_a_data_parallel_run_takes_a_group_of_gpus():
    assert gpu_groups(["0", "1", "2", "3", "4"], 2) == ["0,1", "2,3"]
    assert gpu_groups(["3"], 1) == ["3"]
    with pytest.raises(ExecutorError, match="--nproc-per-node 2 needs 2 GPUs, 1 visible"):
        gpu_groups(["0"], 2)


def test_spec_executor_table_and_the_command_line_that_wins(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[grid]\nplugin = ["mlp_1x512"]\n[overrides]\ndataset = "digits"\n'
        '[executor]\nname = "submitit"\ntimeout_min = 60\ncluster = "local"\n'
    )
    sweep = load_sweep(spec)
    assert (sweep.executor, sweep.executor_options) == ("submitit", {"timeout_min": 60, "cluster": "local"})
    same = sweep.with_command_line(None, ["timeout_min=5"])
    assert (same.executor, same.executor_options) == ("submitit", {"timeout_min": 5, "cluster": "local"})
    other = sweep.with_command_line("ray", ["num_cpus=2"])
    assert (other.executor, other.executor_options) == ("ray", {"num_cpus": 2})


def test_completed_runs_are_never_submitted(tmp_path, monkeypatch):
    configs = tiny_configs([0, 1])
    assert (
        run_sweep(Sweep(configs=configs), ExecutorSettings(results_dir=tmp_path, device="cpu")).count("completed") == 2
    )

    def no_executor(*args):
        raise AssertionError("nothing should be submitted")

    monkeypatch.setattr(sweep, "make_executor", no_executor)
    assert run_sweep(Sweep(configs=configs), ExecutorSettings(results_dir=tmp_path, device="cpu")).count("skipped") == 2
    assert [s.state for s in sweep_status(configs + tiny_configs([7]), tmp_path)] == [
        "completed",
        "completed",
        "missing",
    ]


def descendants(pid: int) -> set[int]:
    """The ids of every process below ``pid`` in the process tree (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or it ended while being read
        children.setdefault(int(fields[1]), []).append(int(proc.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def kill_spawned(command_part: str) -> int:
    """SIGKILL the processes this test process spawned (directly or not) whose command line contains
    ``command_part``; how many. Processes of anyone else on the machine are never touched."""
    killed = 0
    for pid in descendants(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if command_part in command:
                os.kill(pid, signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            continue  # it ended in the meantime
    return killed


def test_kill_spawned_ends_only_this_process_tree():
    import subprocess
    import sys

    marker = "harness-test-sleeper-marker"
    sleeper = [sys.executable, "-c", f"import time; time.sleep(60)  # {marker}"]
    ours = subprocess.Popen(sleeper)
    # A sleeper whose parent exits at once: reparented away from this process, it is no longer ours.
    starter = f"import subprocess as s; print(s.Popen({sleeper!r}, stdout=s.DEVNULL, stderr=s.DEVNULL).pid)"
    orphan = int(subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, check=True).stdout)
    try:
        assert ours.pid in descendants(os.getpid()) and orphan not in descendants(os.getpid())
        assert kill_spawned(marker) == 1 and ours.wait(timeout=10) == -signal.SIGKILL
        os.kill(orphan, 0)  # still alive
    finally:
        ours.kill()
        ours.wait()
        os.kill(orphan, signal.SIGKILL)


@needs_submitit
def test_submitit_local_processes_run_a_sweep(tmp_path):
    configs = tiny_configs([0, 1])
    progress = []
    summary = run_sweep(
        Sweep(configs=configs, executor="submitit", executor_options={"cluster": "local", "timeout_min": 10}),
        ExecutorSettings(results_dir=tmp_path, device="cpu", jobs=1),
        on_progress=progress.append,
    )
    assert summary.count("completed") == 2 and not summary.failed
    assert set(stored_statuses(tmp_path).values()) == {"completed"}
    assert all(c["running"] + c["queued"] + c["done"] == 2 and c["running"] <= 1 for c in progress)  # --jobs 1
    assert any(c["running"] == 1 for c in progress) and progress[-1]["done"] == 2
    logs = list((tmp_path / "logs").rglob("*_log.out"))
    assert len(logs) == 2  # the job logs live beside the results, one folder per job


@needs_submitit
def test_submitit_job_that_dies_is_recorded_failed_and_retried(tmp_path):
    configs = tiny_configs([0])
    on_submitit = Sweep(configs=configs, executor="submitit", executor_options={"cluster": "local"})
    summary = run_sweep(
        on_submitit,
        ExecutorSettings(results_dir=tmp_path, device="cpu"),
        poll_seconds=0.2,
        on_progress=lambda counts: kill_spawned(f"{tmp_path}/logs/"),
    )
    assert len(summary.failed) == 1 and "job" in summary.failed[0].error
    assert stored_statuses(tmp_path) == {configs[0].run_id: "failed"}
    assert run_sweep(on_submitit, ExecutorSettings(results_dir=tmp_path, device="cpu")).count("completed") == 1


@needs_submitit
def test_submitit_options_are_checked_against_submitits_own(tmp_path):
    with pytest.raises(
        ExecutorError, match="unknown option.s. slurm_partitionn for executor 'submitit'; known: .*slurm_partition,"
    ):
        make_executor("submitit", ExecutorSettings(results_dir=tmp_path), {"slurm_partitionn": "gpu"})


@needs_submitit
def test_submitit_slurm_submits_one_array_with_the_gpus_a_run_needs(tmp_path):
    from submitit.slurm.test_slurm import mocked_slurm

    configs = tiny_configs([0, 1, 2])
    with mocked_slurm():
        executor = make_executor(
            "submitit",
            ExecutorSettings(results_dir=tmp_path, device="cuda"),
            {"cluster": "slurm", "slurm_partition": "gpu", "timeout_min": 30, "slurm_array_parallelism": 2},
        )
        executor.submit([Pack((config,)) for config in configs])
        jobs = list(executor.jobs)
        assert len(jobs) == 3 and len({job.job_id.split("_")[0] for job in jobs}) == 1  # one array
        sbatch = next((tmp_path / "logs").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-2%2" in sbatch and "#SBATCH --partition=gpu" in sbatch
    assert "#SBATCH --gpus-per-node=1" in sbatch and "#SBATCH --time=30" in sbatch
    assert f"#SBATCH --output={tmp_path}/logs/" in sbatch
    assert "#SBATCH --signal=USR2@90" in sbatch  # submitit's warning before a timeout: checkpoint and requeue


@needs_submitit
def test_submitit_runs_across_nodes_one_run_a_job_one_gpu_a_task(tmp_path):
    from submitit.slurm.test_slurm import mocked_slurm

    from harness.plugins.submitit_executor import DataParallelRunTask

    configs = tiny_configs([0, 1])
    with mocked_slurm():
        executor = make_executor(
            "submitit",
            ExecutorSettings(results_dir=tmp_path, device="cuda"),
            {"cluster": "slurm", "nodes": 2, "tasks_per_node": 4},
        )
        with pytest.raises(ExecutorError, match="packs and data-parallel runs are exclusive"):
            executor.submit([Pack(tuple(configs))])
        executor.submit([Pack((config,)) for config in configs])
        sbatch = next((tmp_path / "logs").rglob("*_submission.sh")).read_text()
    assert isinstance(executor.task, DataParallelRunTask) and len(executor.jobs) == 2
    assert "#SBATCH --nodes=2" in sbatch and "#SBATCH --ntasks-per-node=4" in sbatch
    assert "#SBATCH --gpus-per-node=4" in sbatch


@needs_submitit
def test_a_preempted_submitit_task_is_requeued_with_its_configuration(tmp_path):
    from harness.plugins.submitit_executor import CheckpointableRunTask

    task = CheckpointableRunTask(ExecutorSettings(results_dir=tmp_path, device="cpu"))
    config = tiny_configs([0])[0]
    requeued = task.checkpoint(config)
    assert requeued.function is task and requeued.args == (config,)


@pytest.fixture(scope="session")
def ray_instance():
    """One real local Ray instance (2 CPUs) for the whole test session."""
    if not HAVE_RAY:
        pytest.skip("ray not installed: pip install 'harness[ray]'")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_tasks_run_a_sweep_and_a_lost_worker_is_a_failed_run(ray_instance, tmp_path):
    configs = tiny_configs([0, 1, 2])
    on_ray = {"executor": "ray", "executor_options": {"num_cpus": 1}}
    summary = run_sweep(Sweep(configs=configs, **on_ray), ExecutorSettings(results_dir=tmp_path, device="cpu"))
    assert summary.count("completed") == 3 and set(stored_statuses(tmp_path).values()) == {"completed"}

    crash = [resolve_config(RunConfig(model="mlp_1x512", dataset="digits", corruption="random_labels", max_epochs=500))]
    summary = run_sweep(
        Sweep(configs=crash, **on_ray),
        ExecutorSettings(results_dir=tmp_path / "crash", device="cpu"),
        poll_seconds=0.2,
        on_progress=lambda counts: kill_spawned("ray::run_task"),
    )
    assert len(summary.failed) == 1 and "Ray task failed" in summary.failed[0].error
    assert stored_statuses(tmp_path / "crash") == {crash[0].run_id: "failed"}


def test_status_and_unknown_executor_on_the_command_line(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[grid]\nplugin = ["mlp_1x512"]\nseed = [0, 1]\n[overrides]\ndataset = "digits"\n'
        "train_size = 100\ntest_size = 50\nepochs = 1\n"
    )
    results = tmp_path / "r"
    run_sweep(Sweep(configs=load_sweep(spec).configs[:1]), ExecutorSettings(results_dir=results, device="cpu"))
    result = CliRunner().invoke(create_app(), ["sweep", str(spec), "--results-dir", str(results), "--status"])
    assert result.exit_code == 0, result.output
    assert (
        "missing     mlp_1x512" in result.output
        and "2 runs: 1 completed, 0 started, 0 interrupted, 0 failed, 1 missing" in result.output
    )
    result = CliRunner().invoke(create_app(), ["sweep", str(spec), "--results-dir", str(results), "--executor", "nope"])
    assert result.exit_code == 2 and "unknown executor 'nope'; known: local, ray, submitit" in result.stderr


def test_a_local_worker_takes_one_gpu_slot(monkeypatch):
    import queue

    import torch

    from harness.plugins.executors import init_worker

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    slots = queue.Queue()
    for slot in gpu_slots(["1", "3"], 2):
        slots.put(slot)
    init_worker(torch.get_num_threads(), slots)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1" and slots.qsize() == 3


@needs_submitit
def test_a_bad_submitit_option_value_is_a_clear_error(tmp_path):
    with pytest.raises(ExecutorError, match="submitit: .*timeout_min"):
        make_executor("submitit", ExecutorSettings(results_dir=tmp_path), {"cluster": "local", "timeout_min": "soon"})


def test_a_failure_recorded_for_a_pack_keeps_a_completed_run(tmp_path):
    from harness.data import CORRUPTION_SCHEME
    from harness.executors import record_failures
    from harness.results import read_row, write_table
    from harness.schema import RUNS_SCHEMA

    done, lost = tiny_configs([0, 1])
    write_table(tmp_path, "runs", done.run_id, [{**done.to_row(), "status": "completed"}], RUNS_SCHEMA)
    results = record_failures(tmp_path, Pack((done, lost)), "job 7 died")
    assert [r.status for r in results] == ["failed", "failed"]
    assert stored_statuses(tmp_path) == {done.run_id: "completed", lost.run_id: "failed"}
    assert read_row(tmp_path, "runs", lost.run_id)["corruption_scheme"] == CORRUPTION_SCHEME
