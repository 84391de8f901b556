"""The ``ray`` executor: one Ray task per run (or pack of runs).

Options: ``address`` (default: ``$RAY_ADDRESS``, else a Ray instance started on this
machine; a Ray instance this process already joined is used as it is), ``num_cpus`` and
``num_gpus`` per run (default 1 CPU, and 1 GPU with ``--device cuda``). Tasks are not
retried by Ray: a task whose worker dies is stored as failed and retried by the next sweep.
"""

from __future__ import annotations

import os

import ray

from harness.executors import ExecutorError, ExecutorSettings, Pack, Result, check_options, record_failures, task_for

OPTIONS = ("address", "num_cpus", "num_gpus")


@ray.remote
def run_task(task, pack: Pack) -> list[Result]:
    return task(pack)


class RayExecutor:
    """Runs as Ray tasks; Ray's scheduler places each where its CPUs and GPUs are free."""

    def __init__(self, settings: ExecutorSettings, **options):
        check_options("ray", options, OPTIONS)
        self.settings = settings
        address = options.get("address") or os.environ.get("RAY_ADDRESS")
        if not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ExecutorError(f"cannot join Ray at {address or 'a new local instance'}: {error}") from None
        resources = {"num_cpus": options.get("num_cpus", 1),
                     "num_gpus": options.get("num_gpus", 1 if settings.device == "cuda" else 0)}
        self.task = task_for(settings, threads=max(1, int(resources["num_cpus"])))
        self.remote = run_task.options(max_retries=0, **resources)
        self.refs: dict[ray.ObjectRef, Pack] = {}

    def submit(self, packs: list[Pack]) -> None:
        for pack in packs:
            self.refs[self.remote.remote(self.task, pack)] = pack

    def wait(self, timeout: float) -> list[Result]:
        done, _ = ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        if done:  # everything else already finished too
            done, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        return [result for ref in done for result in self.collect(ref, self.refs.pop(ref))]

    def collect(self, ref: ray.ObjectRef, pack: Pack) -> list[Result]:
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as error:  # worker or node lost: recorded, retried next sweep
            reason = str(error).strip().splitlines()
            return record_failures(self.settings.results_dir, pack,
                                   f"Ray task failed: {type(error).__name__}: {reason[0] if reason else ''}")

    def counts(self) -> dict[str, int]:
        """Ray does not say cheaply which tasks run: the runs of unfinished tasks count as queued."""
        return {"queued": sum(map(len, self.refs.values())), "running": 0}

    def cancel(self) -> int:
        for ref in self.refs:
            ray.cancel(ref)
        cancelled = sum(map(len, self.refs.values()))
        self.refs.clear()
        return cancelled

    def close(self) -> None:
        pass
