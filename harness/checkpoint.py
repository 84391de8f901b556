"""Runs that survive preemption: a checkpoint per epoch, and SIGTERM handled like Ctrl-C.

A checkpoint is ``RESULTS/checkpoints/<run_id>.pt``, written atomically (temp file +
rename) and made of plain tensors, lists and dicts of primitives only, so that it loads
with ``torch.load(weights_only=True)``. It holds the ``state_dict()`` of every named
object of a run (model, optimizer, batch-order generators, and whatever else a run adds
by name), the global random states (torch, CUDA, numpy, python) and plain values (the
epoch rows so far, the step count).
"""

from __future__ import annotations

import contextlib
import random
import signal
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from harness.results import write_atomically

FORMAT = 1


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class GeneratorState:
    """A ``torch.Generator`` seen as a stateful object."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def state_dict(self) -> dict:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["state"])


def checkpoint_path(results_dir: Path, run_id: str) -> Path:
    return Path(results_dir) / "checkpoints" / f"{run_id}.pt"


def random_states() -> dict:
    """The global random states of torch (CPU and CUDA), numpy and python, as tensors and primitives."""
    keys, position, has_gauss, cached_gaussian = np.random.get_state()[1:]
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],  # CPU runs leave CUDA alone
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
    }


def set_random_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy = states["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    python = states["python"]
    random.setstate((python["version"], tuple(python["internal"].tolist()), python["gauss"]))


def set_device_state(states: dict, device: torch.device, state: torch.Tensor) -> None:
    """Put ``state`` in ``states`` (from :func:`random_states`) as the global generator of ``device``'s."""
    if device.type == "cpu":
        states["torch"] = state
    else:
        states["cuda"][device.index if device.index is not None else torch.cuda.current_device()] = state


def device_state(device: torch.device) -> torch.Tensor:
    """The state of the global generator of ``device``."""
    return torch.get_rng_state() if device.type == "cpu" else torch.cuda.get_rng_state(device)


def save(path: Path, objects: dict[str, Stateful], values: dict, random: dict | None = None) -> None:
    """Write the state of ``objects``, the random states (default: :func:`random_states`) and ``values``
    to ``path`` atomically."""
    checkpoint = {"format": FORMAT, "state": {name: obj.state_dict() for name, obj in objects.items()},
                  "random": random_states() if random is None else random, "values": values}
    write_atomically(path, lambda tmp: torch.save(checkpoint, tmp))


def load(path: Path, objects: dict[str, Stateful]) -> dict | None:
    """Restore ``objects`` and the random states from ``path``; return its values (None if no file).

    Every named object must be in the checkpoint, and only those: a checkpoint written by a
    different kind of run is an error, not a silent partial restore.
    """
    if not path.exists():
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("format") != FORMAT or set(checkpoint["state"]) != set(objects):
        raise ValueError(f"checkpoint {path} does not match this run (holds {sorted(checkpoint['state'])}, "
                         f"expected {sorted(objects)}); delete it or use --no-resume")
    for name, obj in objects.items():
        obj.load_state_dict(checkpoint["state"][name])
    set_random_states(checkpoint["random"])
    return checkpoint["values"]


def saved_epochs(path: Path) -> tuple[int, float] | None:
    """The number of epochs in the checkpoint at ``path`` and its modification time, or None without one."""
    try:
        modified = path.stat().st_mtime
        return len(torch.load(path, map_location="cpu", weights_only=True)["values"]["history"]), modified
    except FileNotFoundError:  # none, or removed meanwhile by a run that completed
        return None


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises KeyboardInterrupt like Ctrl-C (main thread only; elsewhere a no-op)."""
    try:
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
