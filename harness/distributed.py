"""Data-parallel runs on ``torch.distributed``: one run trained by several processes (torchrun, Slurm).

A process started by a launcher finds its place in the environment the launcher sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): :func:`join` starts the process
group (gloo on the CPU, nccl on CUDA, with a timeout so that a lost process ends the run instead of
hanging it) and picks the process's device. A :class:`World` says which process this is and splits
batches and evaluated splits into contiguous shards, one per process, without padding.

:func:`launch` starts ``python -m harness ARGS`` on ``nproc`` processes through torch's own launcher
(``torch.distributed.run``), :func:`launch_function` a Python function (``elastic_launch``); both name the
first process that failed.
"""

from __future__ import annotations

import os
import signal
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from harness.options import seconds_from_env

TIMEOUT_ENV = "HARNESS_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
"""Seconds a process waits in a collective for the others before the run fails (``HARNESS_DISTRIBUTED_TIMEOUT``
overrides it)."""


@dataclass(frozen=True, kw_only=True)
class World:
    """The processes that train one run, and this one's place among them.

    Attributes
    ----------
    rank : int
        This process, from 0.
    size : int
        The number of processes (1: a run trained alone, no process group).
    local_rank : int
        This process among those of its node (its GPU there).
    parallel : bool
        A process group trains the run (a launcher started it, even with one process).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    parallel: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes tables, checkpoints and loggers."""
        return self.rank == 0

    def bounds(self, count: int) -> slice:
        """This process's contiguous shard of ``count`` items: the first ``count % size`` processes take
        one item more than the others; no item is left out or repeated."""
        share, extra = divmod(count, self.size)
        start = self.rank * share + min(self.rank, extra)
        return slice(start, start + share + (self.rank < extra))

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over every process, in place (itself when alone)."""
        if self.parallel:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_from_main(self, tensor: torch.Tensor) -> None:
        """Set ``tensor`` to rank 0's, in place (nothing when alone)."""
        if self.parallel:
            dist.broadcast(tensor, src=0)


ALONE = World()
"""The world of a run trained by one process, without a process group."""


def configured_timeout() -> float:
    """``HARNESS_DISTRIBUTED_TIMEOUT`` when set, else :data:`DEFAULT_TIMEOUT`; ConfigError unless it is a
    number of seconds above 0."""
    return seconds_from_env(TIMEOUT_ENV, DEFAULT_TIMEOUT)


def launched() -> bool:
    """Whether a launcher (torchrun, ``--nproc-per-node``, Slurm through submitit) started this process."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def join(device: torch.device) -> tuple[World, torch.device]:
    """Start this process's group (gloo on the CPU, nccl on CUDA), unless it is started, and return its
    world and device: ``cuda:LOCAL_RANK`` on CUDA, so that every process of a node takes its own GPU."""
    world = World(
        rank=int(os.environ["RANK"]),
        size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        parallel=True,
    )
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=timedelta(seconds=configured_timeout()),
            device_id=device if device.type == "cuda" else None,
        )
    return world, device


def leave() -> None:
    """End this process's group, if it has one."""
    if dist.is_initialized():
        dist.destroy_process_group()


class RankFailed(Exception):
    """A process of a launched run failed: its rank, and how (exit code or signal)."""

    def __init__(self, rank: int, how: str):
        super().__init__(f"rank {rank} failed ({how})")
        self.rank = rank


class LaunchInterrupted(Exception):
    """The launcher was stopped (Ctrl-C, SIGTERM) and stopped its processes."""


STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a launcher and, through it, its processes."""


@contextmanager
def failures_named():
    """Turn the launcher's errors into :class:`RankFailed` (the first process that failed; the launcher
    then stopped the others) and :class:`LaunchInterrupted` (a signal stopped the launcher). The
    launcher's own handlers of :data:`STOPPING_SIGNALS` are replaced by the ones before it on leaving."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    handlers = {number: signal.getsignal(number) for number in STOPPING_SIGNALS}
    try:
        yield
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        how = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit code {failure.exitcode}"
        raise RankFailed(rank, how) from None
    except SignalException as error:
        raise LaunchInterrupted(f"launcher stopped by {error.sigval.name}") from None
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def launch(args: list[str], nproc: int) -> None:
    """Run ``python -m harness ARGS`` on ``nproc`` processes of this node through ``torch.distributed.run``
    (a standalone rendezvous on a free port, no restarts). Raises :class:`RankFailed` or
    :class:`LaunchInterrupted` (:func:`failures_named`)."""
    from torch.distributed.run import main

    with failures_named():
        main(["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "-m", "harness", *args])


def launch_function(function, args: tuple, nproc: int):
    """``function(*args)`` on ``nproc`` processes of this node (spawned) through torch's ``elastic_launch``,
    as :func:`launch` runs a command line; what it returned on rank 0. ``function`` and ``args`` must
    be picklable (``function`` defined at the top of a module)."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        signals_to_handle=",".join(number.name for number in STOPPING_SIGNALS),
    )
    with failures_named():
        return elastic_launch(config, function)(*args)[0]
