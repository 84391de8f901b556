"""Built-in sweep executors: ``local`` (worker processes of this machine, the default),
``submitit`` (Slurm job arrays, or submitit's local executor) and ``ray`` (Ray tasks).

The engines of ``submitit`` and ``ray`` are optional and imported only when used.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from harness import hookimpl
from harness.executors import (
    ExecutorSettings,
    Pack,
    Result,
    check_options,
    gpu_groups,
    gpu_slots,
    record_failures,
    task_for,
    visible_gpus,
)

worker_interrupted = False
"""Set in a worker process once Ctrl-C reached it, so it starts none of its queued runs."""


def warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of a worker: one line on stderr, as the command line shows warnings."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def init_worker(threads: int, gpus) -> None:
    """Set a worker's torch threads and one-line warnings and, with GPUs, take one GPU slot (before CUDA starts)."""
    warnings.showwarning = warning_line
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()
    import torch

    torch.set_num_threads(threads)


def run_in_worker(task, pack: Pack) -> list[Result]:
    """A pack's runs in a worker process of the pool; none starts once Ctrl-C reached the worker."""
    global worker_interrupted
    if worker_interrupted:
        return [Result(config, "interrupted") for config in pack.configs]
    results = task(pack)
    worker_interrupted = any(result.status == "interrupted" for result in results)
    return results


class LocalExecutor:
    """Worker processes of this machine: ``jobs`` tasks (runs or packs) at once, or in this process when
    ``jobs`` is 1.

    With ``--device cuda``, one worker per GPU slot: every visible GPU ``runs_per_gpu`` times,
    each worker seeing only its own GPU; with ``nproc_per_node`` N, one worker per N GPUs, each
    run data-parallel on them. Ctrl-C in a terminal reaches the workers too (same process group):
    each stores its run as interrupted; queued runs are cancelled.
    """

    def __init__(self, settings: ExecutorSettings, **options):
        check_options("local", options, ())
        self.settings = settings
        self.task = task_for(settings)
        gpus = visible_gpus() if settings.device == "cuda" else []
        if gpus and settings.nproc_per_node:
            gpus = gpu_groups(gpus, settings.nproc_per_node)
        slots = gpu_slots(gpus, settings.runs_per_gpu) if gpus else []
        self.workers = len(slots) or settings.jobs
        self.inline: list[Pack] = []
        self.pending: dict[Future, Pack] = {}
        self.pool = None
        if self.workers > 1 or slots:
            context = multiprocessing.get_context("spawn")
            slot_queue = None
            if slots:
                slot_queue = context.Queue()
                for slot in slots:
                    slot_queue.put(slot)
            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=init_worker, initargs=(threads, slot_queue)
            )

    def submit(self, packs: list[Pack]) -> None:
        if self.pool is None:
            self.inline.extend(packs)
            return
        for pack in packs:
            self.pending[self.pool.submit(run_in_worker, self.task, pack)] = pack

    def wait(self, timeout: float) -> list[Result]:
        if self.pool is None:
            results = self.task(self.inline.pop(0))
            if any(result.status == "interrupted" for result in results):
                raise KeyboardInterrupt
            return results
        done, _ = wait(self.pending, timeout, return_when=FIRST_COMPLETED)
        return [result for future in done for result in self.collect(future, self.pending.pop(future))]

    def collect(self, future: Future, pack: Pack) -> list[Result]:
        """A worker's results; a worker that died (killed, out of memory) makes failed runs."""
        try:
            return future.result()
        except Exception as error:  # noqa: BLE001 -- e.g. BrokenProcessPool: recorded, retried next sweep
            return record_failures(
                self.settings.results_dir, pack, f"worker process died: {type(error).__name__}: {error}"
            )

    def counts(self) -> dict[str, int]:
        if self.pool is None:
            return {"queued": sum(map(len, self.inline)), "running": 0}
        running = [pack for future, pack in self.pending.items() if future.running()][: self.workers]
        running_runs = sum(map(len, running))
        return {"queued": sum(map(len, self.pending.values())) - running_runs, "running": running_runs}

    def cancel(self) -> int:
        cancelled = sum(map(len, self.inline))
        cancelled += sum(len(pack) for future, pack in self.pending.items() if future.cancel())
        self.inline.clear()
        return cancelled

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def submitit_executor(settings: ExecutorSettings, **options):
    """Slurm job arrays through submitit's AutoExecutor (``cluster=local``: submitit's local processes)."""
    from harness.plugins.submitit_executor import SubmititExecutor

    return SubmititExecutor(settings, **options)


def ray_executor(settings: ExecutorSettings, **options):
    """Ray tasks on the Ray instance at ``address`` ($RAY_ADDRESS, else one started on this machine)."""
    from harness.plugins.ray_executor import RayExecutor

    return RayExecutor(settings, **options)


@hookimpl
def register_executors(register):
    register("local", LocalExecutor)
    register("submitit", submitit_executor, engine="submitit", extra="slurm")
    register("ray", ray_executor, engine="ray", extra="ray")
