"""Data-parallel runs on the CPU: two processes of one thread each (gloo) against one process.

The runs of two processes train in one group started once for the module (:func:`two_processes`);
the launchers' tests start whole command lines and are marked slow.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.multiprocessing

from harness.config import RunConfig
from harness.data import prepare_data_of
from harness.distributed import World, join, leave
from harness.runner import execute, finish_run, resolve_config, start_run
from harness.training import RunProgress, train_alone

BASE = dict(dataset="digits", corruption="random_labels", test_size=101, max_epochs=3, seed=0)
MLP = RunConfig(model="mlp_1x512", train_size=1001, batch_size=64, **BASE)
"""1,001 training examples: the last batch of each epoch (41) splits into shards of 21 and 20."""
ALEXNET = RunConfig(model="alexnet", train_size=200, batch_size=32, **BASE)
INCEPTION = RunConfig(model="inception", train_size=64, batch_size=32, **{**BASE, "max_epochs": 1})
"""With BatchNorm: each process normalizes by the statistics of its shard."""
CORRUPTIONS = [
    RunConfig(model="mlp_1x512", dataset="digits", corruption=name, train_size=300, test_size=50, seed=3)
    for name in ("random_labels", "random_pixels", "gaussian", "shuffled_pixels")
]
RUNS = {"mlp": MLP, "alexnet": ALEXNET, "inception": INCEPTION}


class InterruptAt(RunProgress):
    def __init__(self, epoch: int):
        self.at = epoch

    def batch(self, epoch, batch, loss):
        if epoch == self.at:
            raise KeyboardInterrupt


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_and_keep(config: RunConfig, results: Path, device, world, progress=None) -> dict:
    """Train ``config`` to its end (or an interrupt) and store it; the final model's state."""
    run = start_run(resolve_config(config), results, None, device, world=world)
    status = "completed"
    try:
        train_alone(run.training, progress or RunProgress())
    except KeyboardInterrupt:
        status = "interrupted"
    finish_run(run, status)
    return {name: value.clone() for name, value in run.training.model.state_dict().items()}


def worker(rank: int, port: int, out: Path) -> None:
    """One of two processes: every data-parallel run of the tests, and the data every process sees."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    world, device = join(torch.device("cpu"))
    try:
        states = {name: train_and_keep(config, out / name, device, world) for name, config in RUNS.items()}
        train_and_keep(MLP, out / "resumed", device, world, InterruptAt(3))
        torch.save(states, out / f"states-{rank}.pt")
        data = [prepare_data_of(resolve_config(config), None) for config in CORRUPTIONS]
        np.savez(out / f"data-{rank}.npz", *[array for d in data for array in (d.x_train, d.y_train, d.x_test)])
    finally:
        leave()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """The folder of the runs of two processes (``<name>/``) and of what each process kept."""
    out = tmp_path_factory.mktemp("two")
    torch.multiprocessing.start_processes(worker, args=(free_port(), out), nprocs=2, start_method="spawn")
    return out


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> tuple[Path, dict]:
    """The folder of the same runs trained by one process, and their final models."""
    out = tmp_path_factory.mktemp("one")
    states = {name: train_and_keep(config, out / name, torch.device("cpu"), World()) for name, config in RUNS.items()}
    return out, states


def stored(results: Path, table: str, run_id: str = "") -> list[dict]:
    return pq.read_table(next((results / table).glob(f"{run_id}*.parquet"))).to_pylist()


@pytest.mark.parametrize("name", ["mlp", "alexnet"])
def test_two_processes_train_as_one(two_processes, one_process, name):
    one, states = one_process
    epochs, alone = stored(two_processes / name, "epochs"), stored(one / name, "epochs")
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and [e["step"] for e in epochs] == [e["step"] for e in alone]
    for row, single in zip(epochs, alone):
        for split, count in (("train", RUNS[name].train_size), ("test", 101)):
            assert row[f"{split}_loss"] == pytest.approx(single[f"{split}_loss"], rel=1e-5)
            for accuracy in (f"{split}_acc", f"{split}_top5"):
                assert abs(row[accuracy] - single[accuracy]) * count <= 1 + 1e-9
    final = torch.load(two_processes / "states-0.pt")[name]
    assert all(torch.allclose(final[key], states[name][key], rtol=1e-4, atol=1e-6) for key in final)
    run = stored(two_processes / name, "runs")[0]
    assert run["world_size"] == 2 and run["run_id"] == stored(one / name, "runs")[0]["run_id"]


def test_every_process_holds_the_same_model(two_processes):
    first, second = torch.load(two_processes / "states-0.pt"), torch.load(two_processes / "states-1.pt")
    for name in RUNS:
        assert all(torch.equal(first[name][key], second[name][key]) for key in first[name]), name


def test_with_batch_norm_the_statistics_are_each_shards(two_processes, one_process):
    """Each process normalizes by its shard's statistics: the result differs from one process's, while
    the processes hold one model (running statistics broadcast from rank 0) and every example counts once."""
    one, states = one_process
    two = torch.load(two_processes / "states-0.pt")["inception"]
    assert any(not torch.allclose(two[key], states["inception"][key], rtol=1e-4) for key in two)
    row, single = stored(two_processes / "inception", "epochs")[0], stored(one / "inception", "epochs")[0]
    assert row["train_loss"] != pytest.approx(single["train_loss"], rel=1e-5)
    assert (
        round(row["train_acc"] * 64) == row["train_acc"] * 64 and round(row["test_acc"] * 101) == row["test_acc"] * 101
    )


def test_every_example_is_evaluated_once(two_processes, one_process):
    """1,001 training examples over two processes: each one's record is the one process's."""
    one, _ = one_process
    examples, alone = stored(two_processes / "mlp", "examples"), stored(one / "mlp", "examples")
    assert len(examples) == 1001 and [e["index"] for e in examples] == list(range(1001))
    losses = np.array([e["final_loss"] for e in examples])
    assert np.allclose(losses, [e["final_loss"] for e in alone], rtol=1e-4)
    fitted = sum(e["final_margin"] > 0 for e in examples)
    assert fitted == round(stored(two_processes / "mlp", "runs")[0]["train_acc"] * 1001)


def test_every_process_draws_the_same_corruption(two_processes):
    first, second = np.load(two_processes / "data-0.npz"), np.load(two_processes / "data-1.npz")
    alone = [prepare_data_of(resolve_config(config), None) for config in CORRUPTIONS]
    here = [array for d in alone for array in (d.x_train, d.y_train, d.x_test)]
    assert len(first.files) == len(second.files) == len(here) == 12
    for position, array in enumerate(here):
        name = f"arr_{position}"
        assert np.array_equal(first[name], array) and np.array_equal(second[name], array), name


def test_a_run_interrupted_on_two_processes_resumes_on_one(two_processes):
    results = two_processes / "resumed"
    assert stored(results, "runs")[0]["status"] == "interrupted" and len(stored(results, "epochs")) == 2
    resumed = execute(MLP, results, device="cpu").row
    assert resumed["status"] == "completed" and resumed["resumed_from_epoch"] == 2 and resumed["world_size"] == 1
    uninterrupted = stored(two_processes / "mlp", "epochs")
    for row, whole in zip(stored(results, "epochs"), uninterrupted, strict=True):
        assert row.keys() == whole.keys()
        for key, value in row.items():
            if key == "wall_seconds":
                continue
            assert value == (pytest.approx(whole[key], rel=1e-6) if isinstance(value, float) else whole[key]), key


def test_packs_are_not_data_parallel(monkeypatch, tmp_path):
    from harness.errors import ConfigError
    from harness.packing import execute_pack

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="packs and data-parallel runs are exclusive"):
        execute_pack([MLP, replace(MLP, seed=1)], tmp_path, device="cpu")


def test_sync_bn_needs_cuda(tmp_path):
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="SyncBatchNorm does not run on the CPU"):
        execute(replace(INCEPTION, sync_bn=True), tmp_path, device="cpu")


COMMAND = ["run", "--plugin", "mlp_1x512", "--dataset", "digits", "--corruption", "random_labels", "--device", "cpu"]
SMALL = ["--train-size", "200", "--test-size", "50", "--batch-size", "32", "--max-epochs", "2"]
ENDLESS = ["--train-size", "1000", "--test-size", "50", "--max-epochs", "1000", "--lr", "1e-6"]
"""Never fitted: it runs until it is stopped."""
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def without_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("started_at", "wall_seconds")} for row in rows]


@pytest.mark.slow
def test_torchrun_and_nproc_per_node_store_the_same_run(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    for command in (
        [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "harness", *COMMAND, *SMALL],
        [sys.executable, "-m", "harness", *COMMAND, *SMALL, "--nproc-per-node", "2"],
    ):
        results = tmp_path / Path(command[0]).name
        subprocess.run([*command, "--results-dir", str(results)], env=ONE_THREAD, check=True, timeout=300)
    for table in ("runs", "epochs", "examples"):
        by_torchrun, by_harness = (
            stored(tmp_path / "torchrun", table),
            stored(tmp_path / Path(sys.executable).name, table),
        )
        assert without_times(by_torchrun) == without_times(by_harness), table
    assert stored(tmp_path / "torchrun", "runs")[0]["world_size"] == 2


def descendants(ancestor: int) -> dict[int, list[str]]:
    """The processes that ``ancestor`` started, and theirs (the launcher's workers run in sessions of their
    own): their environment, by process id."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):  # gone meanwhile
            continue
    found, frontier = {}, {ancestor}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        for pid in frontier:
            try:
                found[pid] = (Path("/proc") / str(pid) / "environ").read_bytes().decode().split("\0")
            except OSError:
                continue
    return found


def launch_endless(results: Path, command: list[str] = (*COMMAND, *ENDLESS)) -> subprocess.Popen:
    """``harness COMMAND --nproc-per-node 2`` (by default a run that goes on until it is stopped), once its
    first epoch is stored in a checkpoint."""
    launcher = subprocess.Popen(
        [sys.executable, "-m", "harness", *command, "--nproc-per-node", "2", "--results-dir", str(results)],
        env=ONE_THREAD,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not any((results / "checkpoints").glob("*.pt")):
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()[0]
        time.sleep(0.2)
    return launcher


def running(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists, and is no zombie waiting for its parent to collect it."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ended(launcher: subprocess.Popen, timeout: float) -> str:
    """What the launcher printed, once it ended within ``timeout`` seconds, having ended every process it
    started; whatever is left of them is killed."""
    workers = list(descendants(launcher.pid))
    try:
        output = launcher.communicate(timeout=timeout)[0]
        time.sleep(1)
        assert not [pid for pid in workers if running(pid)], "a process outlived the launcher"
        return output
    finally:
        for pid in [launcher.pid, *workers]:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_dying_process_fails_the_run_naming_its_rank(tmp_path):
    launcher = launch_endless(tmp_path)
    second = next(pid for pid, env in descendants(launcher.pid).items() if "RANK=1" in env)
    os.kill(second, signal.SIGKILL)
    output = ended(launcher, timeout=60)
    assert launcher.returncode == 1, output
    row = stored(tmp_path, "runs")[0]
    assert row["status"] == "failed" and row["error"].startswith("rank 1 failed (signal SIGKILL) of 2 processes")
    assert row["epochs"] >= 1 and any((tmp_path / "checkpoints").glob("*.pt"))


@pytest.mark.slow
def test_sigterm_interrupts_every_process_and_keeps_the_checkpoint(tmp_path):
    launcher = launch_endless(tmp_path)
    launcher.send_signal(signal.SIGTERM)
    output = ended(launcher, timeout=60)
    assert launcher.returncode == 130, output
    row = stored(tmp_path, "runs")[0]
    assert row["status"] == "interrupted" and row["epochs"] >= 1 and row["world_size"] == 2
    assert len(list((tmp_path / "checkpoints").glob("*.pt"))) == 1


SWEEP = 'plugin = "mlp_1x512"\ndataset = "digits"\ncorruption = "random_labels"\ntest_size = 50\n'
"""The overrides of COMMAND's runs in a sweep spec; SMALL_SWEEP and ENDLESS_SWEEP add SMALL's and ENDLESS's."""
SMALL_SWEEP = SWEEP + "train_size = 200\nbatch_size = 32\nmax_epochs = 2\n"
ENDLESS_SWEEP = SWEEP + "train_size = 1000\nmax_epochs = 1000\nlr = 1e-6\n"


def sweep_spec(path: Path, overrides: str, seeds: tuple[int, ...] = (0,)) -> list[str]:
    """``sweep SPEC --device cpu`` of a spec of ``overrides``, one run per seed."""
    path.write_text(f"[grid]\nseed = {list(seeds)}\n[overrides]\n{overrides}")
    return ["sweep", str(path), "--device", "cpu"]


def sweep_twice(tmp_path: Path, seeds: tuple[int, ...], *options: str) -> None:
    """A sweep of SMALL_SWEEP's runs, one per seed, with ``options`` into ``tmp_path/two`` and without into
    ``tmp_path/one``."""
    command = [sys.executable, "-m", "harness", *sweep_spec(tmp_path / "s.toml", SMALL_SWEEP, seeds)]
    for name, extra in (("two", options), ("one", ())):
        results = ["--results-dir", str(tmp_path / name)]
        subprocess.run([*command, *extra, *results], env=ONE_THREAD, check=True, timeout=300)


def assert_two_processes_stored_the_runs_of_one(tmp_path: Path, count: int) -> None:
    """``tmp_path/two`` holds ``count`` completed runs of two processes, with the epochs of ``tmp_path/one``'s."""
    runs = {row["run_id"]: row for row in stored_all(tmp_path / "two", "runs")}
    alone = {row["run_id"]: row for row in stored_all(tmp_path / "one", "runs")}
    assert runs.keys() == alone.keys() and len(runs) == count
    assert {(row["world_size"], row["status"]) for row in runs.values()} == {(2, "completed")}
    for run_id in runs:
        epochs, single = (stored(tmp_path / name, "epochs", run_id) for name in ("two", "one"))
        assert [e["step"] for e in epochs] == [e["step"] for e in single] and len(epochs) == 2
        for row, one in zip(epochs, single):
            for split, examples in (("train", 200), ("test", 50)):
                assert row[f"{split}_loss"] == pytest.approx(one[f"{split}_loss"], rel=1e-5)
                assert abs(row[f"{split}_acc"] - one[f"{split}_acc"]) * examples <= 1 + 1e-9
    assert not list((tmp_path / "two" / "claims").glob("*.claim"))


@pytest.mark.slow
def test_a_data_parallel_sweep_stores_the_runs_of_one_process(tmp_path):
    sweep_twice(tmp_path, (0, 1), "--nproc-per-node", "2")
    assert_two_processes_stored_the_runs_of_one(tmp_path, 2)


@pytest.mark.slow
def test_two_submitit_tasks_train_one_run(tmp_path):
    """submitit's local processes stand for the tasks of one Slurm job (``tasks_per_node=2``)."""
    pytest.importorskip("submitit")
    options = ("cluster=local", "tasks_per_node=2", "cpus_per_task=1")
    sweep_twice(tmp_path, (0,), "--executor", "submitit", *[f"--executor-option={option}" for option in options])
    assert_two_processes_stored_the_runs_of_one(tmp_path, 1)


@pytest.mark.slow
def test_a_dying_process_fails_the_sweeps_run_naming_its_rank(tmp_path):
    launcher = launch_endless(tmp_path, sweep_spec(tmp_path / "s.toml", ENDLESS_SWEEP))
    spawned = [pid for pid, env in descendants(launcher.pid).items() if "spawn_main" in cmdline(pid)]
    second = max(spawned, key=lambda pid: (started(pid), pid))  # ranks start in order: the last is rank 1
    os.kill(second, signal.SIGKILL)
    output = ended(launcher, timeout=60)
    assert launcher.returncode == 1, output
    row = stored(tmp_path, "runs")[0]
    assert row["status"] == "failed" and row["error"].startswith("rank 1 failed (signal SIGKILL) of 2 processes")
    assert "rank 1 failed" in output and not list((tmp_path / "claims").glob("*"))


@pytest.mark.slow
def test_sigterm_interrupts_every_process_of_a_sweep(tmp_path):
    launcher = launch_endless(tmp_path, sweep_spec(tmp_path / "s.toml", ENDLESS_SWEEP))
    launcher.send_signal(signal.SIGTERM)
    output = ended(launcher, timeout=60)
    assert launcher.returncode == 130, output
    row = stored(tmp_path, "runs")[0]
    assert row["status"] == "interrupted" and row["epochs"] >= 1 and row["world_size"] == 2


def test_packs_of_a_data_parallel_sweep_are_refused(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import create_app

    spec = sweep_spec(tmp_path / "s.toml", SMALL_SWEEP, seeds=(0, 1))
    result = CliRunner().invoke(
        create_app(), [*spec, "--pack", "2", "--nproc-per-node", "2", "--results-dir", str(tmp_path)]
    )
    assert result.exit_code != 0 and "packs and data-parallel runs are exclusive" in result.output
    assert not (tmp_path / "runs").exists()


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode()
    except OSError:
        return ""


def started(pid: int) -> int:
    """When the process started, in clock ticks since boot."""
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19])


def stored_all(results: Path, table: str) -> list[dict]:
    return [row for path in sorted((results / table).glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
