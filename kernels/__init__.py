"""Kernel regression for the paper's Section 5: solve ``(K + λI) α = Y`` exactly.

Feature maps yield blocks of feature dimensions, pairs ``(F_train_b, F_test_b)``
of float32 arrays shaped (n, d_b) and (m, d_b); raw pixels are a single block.
:func:`solve_kernel_regression` accumulates the Gram matrices over the blocks,
turns them into a linear, gaussian or laplacian kernel, factors the train kernel
with a tiled Cholesky (in memory or out of core within a memory budget) and
predicts the test set. :data:`KERNEL_RUNS_SCHEMA` is the results table's schema.
"""

from harness.kernels.gram import KERNELS, FeatureBlocks, pixel_blocks
from harness.kernels.linalg import NotPositiveDefiniteError
from harness.kernels.memory import parse_memory_size
from harness.kernels.plan import DTYPES, MemoryBudgetError
from harness.kernels.schema import KERNEL_RUNS_SCHEMA
from harness.kernels.solver import (
    KernelRegressionResult,
    NonFiniteSolutionError,
    error_rate,
    solve_kernel_regression,
)

__all__ = [
    "DTYPES",
    "KERNELS",
    "KERNEL_RUNS_SCHEMA",
    "FeatureBlocks",
    "KernelRegressionResult",
    "MemoryBudgetError",
    "NonFiniteSolutionError",
    "NotPositiveDefiniteError",
    "error_rate",
    "parse_memory_size",
    "pixel_blocks",
    "solve_kernel_regression",
]
