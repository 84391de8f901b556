"""Storage plan: which kernel matrices stay in memory and which go to a temporary file.

A solve holds three tiled matrices: the train kernel being factored (lower tiles),
a pristine copy of it (for residuals, refinement and restarts with jitter) and the
test×train kernel. The plan keeps as many as the memory budget allows in memory,
moving first the test kernel, then the copy, then the factor itself to disk.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import ConfigError, HarnessError
from harness.kernels.memory import format_bytes
from harness.kernels.tiles import TileGrid, TileLayout

DTYPES = ("float64", "float32", "auto")
DEFAULT_TILE_SIZE = 4096
MIN_TILE_SIZE = 256
_WORK_TILES = 3
"""Tiles of scratch memory (counted as float64) planned besides the stores: tiles copied out of files."""


class MemoryBudgetError(HarnessError, MemoryError):
    """The memory budget cannot hold even the tiles a solve needs at once."""


@dataclass(frozen=True)
class StoragePlan:
    """Where the matrices of one solve live, and what that costs."""

    dtype: np.dtype
    tile_size: int
    factor_in_memory: bool
    reference_in_memory: bool
    test_in_memory: bool
    memory_bytes: int
    """Planned peak of the solver's own arrays (stores, scratch tiles, right-hand sides)."""
    disk_bytes: int

    @property
    def in_core(self) -> bool:
        return self.factor_in_memory and self.reference_in_memory and self.test_in_memory

    def describe(self, inside: str = "in memory", outside: str = "on disk") -> str:
        """Where each matrix is, ``inside`` or ``outside`` the memory of the budget (e.g. "on the GPU", "in host memory")."""
        places = {
            "factor": self.factor_in_memory,
            "reference": self.reference_in_memory,
            "test kernel": self.test_in_memory,
        }
        where = ", ".join(f"{name} {inside if in_memory else outside}" for name, in_memory in places.items())
        return f"{self.dtype.name}, tiles of {self.tile_size}: {where}"


_PLACEMENTS = ((True, True, True), (True, True, False), (True, False, False), (False, False, False))
"""(factor, reference, test kernel) in memory, most preferred first."""


def plan_storage(
    train_size: int, test_size: int, outputs: int, dtype: str, budget: int, tile_size: int | None = None
) -> StoragePlan:
    """The most in-memory plan that fits ``budget`` bytes.

    ``dtype="auto"`` takes float64 when its factor fits in memory, float32 otherwise
    (the solver asks for float32 itself when it can retry in float64).
    ``tile_size=None`` starts from :data:`DEFAULT_TILE_SIZE` and halves it (down to
    :data:`MIN_TILE_SIZE`) when only smaller tiles make an out-of-core solve fit.
    Raises :class:`MemoryBudgetError` when nothing fits.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    if dtype == "auto":
        plan = _first_fit(train_size, test_size, outputs, np.dtype("float64"), budget, tile_size, _PLACEMENTS[:3])
        if plan is not None:
            return plan
        dtype = "float32"
    plan = _first_fit(train_size, test_size, outputs, np.dtype(dtype), budget, tile_size, _PLACEMENTS)
    if plan is None:
        sizes = _tile_sizes(train_size, tile_size)
        smallest = _plan(train_size, test_size, outputs, np.dtype(dtype), sizes[-1], _PLACEMENTS[-1])
        in_core = _plan(train_size, test_size, outputs, np.dtype(dtype), sizes[0], _PLACEMENTS[0])
        raise MemoryBudgetError(
            f"memory budget {format_bytes(budget)} cannot hold the tiles of a {train_size}-point {dtype} solve: "
            f"out of core it needs at least {format_bytes(smallest.memory_bytes)} (tiles of {smallest.tile_size}), "
            f"in memory {format_bytes(in_core.memory_bytes)}"
        )
    return plan


class DiskSpaceError(HarnessError, OSError):
    """The folder for an out-of-core solve's temporary files has too little free space."""


def check_disk_space(plan: StoragePlan, folder: Path) -> None:
    """Raise :class:`DiskSpaceError` when ``folder`` lacks the free space the plan's files need."""
    free = shutil.disk_usage(folder).free
    if plan.disk_bytes > free:
        raise DiskSpaceError(
            f"the out-of-core solve needs {format_bytes(plan.disk_bytes)} of temporary files "
            f"but {folder} has {format_bytes(free)} free"
        )


def _first_fit(train_size, test_size, outputs, dtype, budget, tile_size, placements) -> StoragePlan | None:
    for placement in placements:
        for size in _tile_sizes(train_size, tile_size):
            plan = _plan(train_size, test_size, outputs, dtype, size, placement)
            if plan.memory_bytes <= budget:
                return plan
            if placement[0]:  # smaller tiles barely change an in-memory plan
                break
    return None


def _tile_sizes(train_size: int, tile_size: int | None) -> list[int]:
    if tile_size is not None:
        return [tile_size]
    sizes = [min(DEFAULT_TILE_SIZE, train_size)]
    while sizes[-1] // 2 >= MIN_TILE_SIZE:
        sizes.append(sizes[-1] // 2)
    return sizes


def _plan(train_size, test_size, outputs, dtype, tile_size, placement) -> StoragePlan:
    factor_in_memory, reference_in_memory, test_in_memory = placement
    train_grid = TileGrid(train_size, tile_size)
    kernel_bytes = TileLayout(train_grid, train_grid, lower=True).size * dtype.itemsize
    test_bytes = test_size * train_size * dtype.itemsize
    sizes = {"factor": kernel_bytes, "reference": kernel_bytes, "test": test_bytes}
    in_memory = {"factor": factor_in_memory, "reference": reference_in_memory, "test": test_in_memory}
    vectors = 8 * (6 * train_size * outputs + 2 * test_size * outputs + train_size + test_size)
    scratch = _WORK_TILES * tile_size * tile_size * 8
    panel = 0 if factor_in_memory else train_size * tile_size * dtype.itemsize
    return StoragePlan(
        dtype=dtype,
        tile_size=tile_size,
        factor_in_memory=factor_in_memory,
        reference_in_memory=reference_in_memory,
        test_in_memory=test_in_memory,
        memory_bytes=vectors + scratch + panel + sum(sizes[name] for name in sizes if in_memory[name]),
        disk_bytes=sum(sizes[name] for name in sizes if not in_memory[name]),
    )
