"""The ``submitit`` executor: one Slurm job per task (a run, or a pack of runs), submitted as a job array.

Options are submitit's own (``timeout_min``, ``gpus_per_node``, ``cpus_per_task``,
``slurm_partition``, ``slurm_array_parallelism``, ...), plus ``cluster`` (``slurm``, or
``local`` for submitit's local processes; default: what submitit detects). Job logs go to
``RESULTS/logs/<job id>/``. A job that Slurm preempts or times out is requeued through
submitit's checkpointing protocol and resumes from its run's last checkpoint.

With ``nodes`` × ``tasks_per_node`` above 1, every job is one data-parallel run over that many
processes (one GPU each on CUDA: ``gpus_per_node`` is ``tasks_per_node`` unless given): each task
exports torch.distributed's environment (rank, world size, master address) and trains its shard,
and only rank 0 claims and stores the run.
"""

from __future__ import annotations

import os
import time

import submitit
from submitit.core import plugins
from submitit.helpers import Checkpointable, TorchDistributedEnvironment

from harness.executors import (
    ExecutorError,
    ExecutorSettings,
    Pack,
    Result,
    RunTask,
    check_options,
    record_failures,
    task_for,
)

POLL_SECONDS = 0.5


class CheckpointableRunTask(RunTask, Checkpointable):
    """A run's task that submitit requeues on preemption or timeout (the run resumes from its checkpoint)."""


class DataParallelRunTask(CheckpointableRunTask):
    """A run's task on every Slurm task of its job: one process of a data-parallel run over them all."""

    def __call__(self, pack: Pack) -> list[Result]:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # LOCAL_RANK picks the GPU
        return super().__call__(pack)


def known_options() -> set[str]:
    """``cluster``, AutoExecutor's shared parameters and every cluster's own, prefixed by its name."""
    generic = set(submitit.AutoExecutor._typed_parameters())
    specific = {
        f"{name}_{parameter}"
        for name, executor in plugins.get_executors().items()
        for parameter in executor._valid_parameters()
    }
    return {"cluster"} | generic | specific


class SubmititExecutor:
    """Runs as submitit jobs; on Slurm one job array, with submitit's local executor at most ``jobs`` at once."""

    def __init__(self, settings: ExecutorSettings, **options):
        check_options("submitit", options, known_options())
        self.settings = settings
        cluster = options.pop("cluster", None)
        self.processes = options.get("nodes", 1) * options.get("tasks_per_node", 1)
        if settings.device == "cuda":
            options.setdefault("gpus_per_node", options.get("tasks_per_node", 1))
        try:
            self.executor = submitit.AutoExecutor(folder=settings.log_dir / "%j", cluster=cluster)
            self.executor.update_parameters(**options)
        except (RuntimeError, ValueError, AssertionError) as error:  # no cluster found, a bad option value
            raise ExecutorError(
                f"submitit: {error} (options: {options}; cluster=slurm or cluster=local chooses the cluster)"
            ) from None
        local = self.executor.cluster == "local"
        self.limit = settings.jobs if local else None
        threads = options.get("cpus_per_task") or (max(1, (os.cpu_count() or 1) // settings.jobs) if local else None)
        task = DataParallelRunTask if self.processes > 1 else CheckpointableRunTask
        self.task = task(**vars(task_for(settings, threads)))
        self.waiting: list[Pack] = []
        self.jobs: dict[submitit.Job, Pack] = {}

    def submit(self, packs: list[Pack]) -> None:
        if self.processes > 1 and any(len(pack) > 1 for pack in packs):
            raise ExecutorError(
                "packs and data-parallel runs are exclusive: a pack trains in one process (leave out --pack "
                "or set nodes and tasks_per_node to 1)"
            )
        self.waiting.extend(packs)
        self.fill()

    def fill(self) -> None:
        """Submit what waits: all at once as one array, or up to the local limit."""
        room = len(self.waiting) if self.limit is None else self.limit - len(self.jobs)
        batch, self.waiting = self.waiting[:room], self.waiting[room:]
        if not batch:
            return
        with self.executor.batch():
            jobs = [self.executor.submit(self.task, pack) for pack in batch]
        self.jobs.update(zip(jobs, batch))

    def wait(self, timeout: float) -> list[Result]:
        deadline = time.monotonic() + timeout
        while True:
            done = [job for job in self.jobs if job.done()]
            if done or time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        results = [result for job in done for result in self.collect(job, self.jobs.pop(job))]
        self.fill()
        return results

    def collect(self, job: submitit.Job, pack: Pack) -> list[Result]:
        try:
            return job.results()[0]  # task 0's: rank 0 of a data-parallel run
        except Exception as error:  # noqa: BLE001 -- a lost job is recorded as failed, retried next sweep
            reason = str(error).strip().splitlines()
            return record_failures(
                self.settings.results_dir,
                pack,
                f"job {job.job_id} failed: {type(error).__name__}: {reason[-1] if reason else ''}",
            )

    def counts(self) -> dict[str, int]:
        running = sum(len(pack) for job, pack in self.jobs.items() if job.state == "RUNNING")  # Slurm's word
        queued = sum(map(len, self.waiting)) + sum(map(len, self.jobs.values())) - running
        return {"queued": queued, "running": running}

    def cancel(self) -> int:
        cancelled = sum(map(len, self.waiting)) + sum(map(len, self.jobs.values()))
        for job in self.jobs:
            job.cancel(check=False)
        self.waiting.clear()
        self.jobs.clear()
        return cancelled

    def close(self) -> None:
        pass
