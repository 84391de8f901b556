"""Shared helpers of the kernel benchmarks: MNIST from IDX files, and what BLAS is in use."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DATA_ROOT_ENV = "HARNESS_DATA_ROOT"


def data_root(argument: str | None) -> Path:
    """``--data-root`` if given, else ``$HARNESS_DATA_ROOT``."""
    root = argument or os.environ.get(DATA_ROOT_ENV)
    if not root:
        raise SystemExit(f"give --data-root or set {DATA_ROOT_ENV} to a folder holding MNIST/raw/")
    return Path(root)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a NumPy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        data = file.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_mnist(root: Path, train_size: int, test_size: int):
    """The first ``train_size``/``test_size`` MNIST images as float32 pixels/255 (N, 784), and labels."""
    raw = root / "MNIST" / "raw"

    def split(prefix: str, size: int):
        images = read_idx(_existing(raw / f"{prefix}-images-idx3-ubyte"))[:size]
        labels = read_idx(_existing(raw / f"{prefix}-labels-idx1-ubyte"))[:size].astype(np.int64)
        return images.reshape(len(images), -1).astype(np.float32) / np.float32(255), labels

    return (*split("train", train_size), *split("t10k", test_size))


def _existing(path: Path) -> Path:
    gzipped = path.with_name(path.name + ".gz")
    if not path.exists() and gzipped.exists():
        return gzipped
    return path


def blas_report() -> str:
    """The BLAS libraries loaded (threadpoolctl), their kernels and threads, and OPENBLAS_CORETYPE."""
    from threadpoolctl import threadpool_info

    libraries = [
        f"{info['prefix']} {info.get('version')} ({info.get('architecture', '?')}, {info['num_threads']} threads)"
        for info in threadpool_info()
        if info["user_api"] == "blas"
    ]
    coretype = os.environ.get("OPENBLAS_CORETYPE", "unset")
    return f"BLAS: {'; '.join(libraries)}; OPENBLAS_CORETYPE={coretype}"


def stage_gflops(result, train_size: int, test_size: int) -> dict[str, float]:
    """GFLOP/s of the solver's Gram and factor stages.

    Flop counts: the Gram stage n²·d (the train kernel's lower half) plus 2·m·n·d (the
    test kernel), the Cholesky factorization n³/3 (a retry with jitter not counted).
    """
    n, m, d = train_size, test_size, result.feature_dim
    return {
        "gram": (n * n * d + 2 * m * n * d) / result.gram_seconds / 1e9,
        "factor": n**3 / 3 / result.factor_seconds / 1e9,
    }


def blas_rates_line(size: int) -> str:
    """This machine's GEMM/SYRK/TRSM/POTRF GFLOP/s (float32 and float64) on size × size operands, as one line."""
    from blas_rates import measure

    parts = []
    for dtype in ("float32", "float64"):
        rates = measure(dtype, size, repeats=2)
        parts.append(f"{dtype} " + " ".join(f"{name} {rate:.0f}" for name, rate in rates.items()))
    return f"BLAS GFLOP/s at {size}: " + "; ".join(parts)
