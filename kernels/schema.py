"""Arrow schema of the ``kernel_runs`` results table: one row per kernel regression run."""

from __future__ import annotations

import pyarrow as pa

from harness.schema import column

KERNEL_RUNS_SCHEMA = pa.schema(
    [
        column("run_id", pa.string(), "Unique identifier of the run"),
        column("status", pa.string(), "Outcome of the run: completed or failed"),
        column("error", pa.string(), "Error message when the run failed, else null"),
        column("dataset", pa.string(), "Data set name (e.g. mnist, cifar10)"),
        column("features", pa.string(), "Feature map the kernel acts on (e.g. pixels)"),
        column(
            "feature_options", pa.string(), 'Options of the feature map as a JSON object (e.g. {"num_filters": 2000})'
        ),
        column("kernel", pa.string(), "Kernel: linear, gaussian or laplacian"),
        column(
            "bandwidth",
            pa.float64(),
            "Kernel bandwidth γ used in exp(-γ‖x-y‖²) or exp(-γ‖x-y‖₂) (after --bandwidth median); null for linear",
        ),
        column("ridge", pa.float64(), "Ridge λ added to the kernel diagonal (0: interpolation)"),
        column("corruption", pa.string(), "Corruption applied to the training data, or null"),
        column("corrupt_prob", pa.float64(), "Probability of corrupting each training example"),
        column("seed", pa.int64(), "Random seed of the corruption and feature map"),
        column("train_size", pa.int64(), "Number of training examples n"),
        column("test_size", pa.int64(), "Number of test examples m"),
        column("feature_dim", pa.int64(), "Total feature dimension over all feature blocks"),
        column("dtype", pa.string(), "Storage dtype of the kernel tiles: float64 or float32"),
        column("backend", pa.string(), "Array backend of the solver (e.g. numpy)"),
        column("device", pa.string(), "Device the solver ran on (e.g. cpu)"),
        column("train_error", pa.float64(), "Fraction of training examples misclassified by argmax of K α"),
        column("test_error", pa.float64(), "Fraction of test examples misclassified by argmax of K_test,train α"),
        column("rkhs_norm", pa.float64(), "RKHS norm of the solution: sqrt(trace(αᵀ K α))"),
        column("jitter", pa.float64(), "Jitter added to the diagonal so the Cholesky factorization succeeds (0: none)"),
        column("relative_residual", pa.float64(), "Final ‖Y - (K + λI) α‖ / ‖Y‖, computed in float64"),
        column("gram_seconds", pa.float64(), "Seconds spent building the train and test kernel matrices"),
        column("factor_seconds", pa.float64(), "Seconds spent in the Cholesky factorization, retries included"),
        column("solve_seconds", pa.float64(), "Seconds spent in triangular solves and iterative refinement"),
        column("predict_seconds", pa.float64(), "Seconds spent computing the test predictions"),
        column("wall_seconds", pa.float64(), "Wall-clock seconds of the whole run, data loading included"),
        column("peak_memory_bytes", pa.int64(), "Peak resident memory of the process in bytes"),
        column("started_at", pa.timestamp("us", tz="UTC"), "When the run started (UTC)"),
        column("harness_version", pa.string(), "Version of the harness package that produced the row"),
    ]
)
"""One row per kernel run; each field carries a one-line ``description`` in its metadata."""
