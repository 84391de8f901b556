"""Benchmark: this machine's GEMM, SYRK, TRSM and POTRF rates (GFLOP/s), the limits of the kernel solver.

The solver's stages are made of these calls: the Gram matrix is GEMM work, the
Cholesky factorization SYRK/GEMM trailing updates, TRSM panel solves and POTRF on
diagonal blocks. Each call is timed on a square n × n operand through SciPy's
BLAS/LAPACK (what the solver calls), with the BLAS threads the process has;
POTRF also with one thread. The best of ``--repeats`` runs is reported.

    python benchmarks/blas_rates.py --size 4096
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.linalg import blas, lapack
from threadpoolctl import threadpool_limits

OPERATIONS = ("gemm", "syrk", "trsm", "potrf", "potrf-1-thread")


def _flops(operation: str, n: int) -> float:
    return {"gemm": 2 * n**3, "syrk": n**3, "trsm": n**3}.get(operation, n**3 / 3)


def _call(operation: str, a: np.ndarray, spd: np.ndarray, out: np.ndarray):
    """A zero-argument function running ``operation`` once on fresh copies of its operands."""
    if operation == "gemm":
        gemm = blas.get_blas_funcs("gemm", (a,))
        return lambda: gemm(1.0, a, a, beta=0.0, c=out, trans_b=1, overwrite_c=1)
    if operation == "syrk":
        syrk = blas.get_blas_funcs("syrk", (a,))
        return lambda: syrk(1.0, a, beta=0.0, c=out, lower=1, overwrite_c=1)
    potrf = lapack.get_lapack_funcs("potrf", (spd,))
    factor = np.asfortranarray(potrf(spd, lower=True, clean=True)[0])
    if operation == "trsm":
        trsm = blas.get_blas_funcs("trsm", (factor,))

        def run():
            out[...] = a
            trsm(1.0, factor, out, side=1, lower=1, trans_a=1, overwrite_b=1)

        return run

    def factorize():
        out[...] = spd
        potrf(out, lower=True, overwrite_a=True, clean=False)

    return factorize


def measure(dtype: str, size: int, repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """GFLOP/s of each of :data:`OPERATIONS` on ``size`` × ``size`` operands of ``dtype`` (best of ``repeats``)."""
    rng = np.random.default_rng(seed)
    a = np.asfortranarray(rng.standard_normal((size, size)).astype(dtype))
    # a general product: NumPy's syrk for ``a @ a.T`` crashes in OpenBLAS's SkylakeX kernels from about
    # 16,000 rows (the SYRK rate below is measured through SciPy and crashes there alike at such sizes)
    spd = np.asfortranarray(a @ np.ascontiguousarray(a.T) / size + np.eye(size, dtype=dtype))
    out = np.empty_like(a, order="F")
    rates = {}
    for operation in OPERATIONS:
        run = _call(operation.split("-")[0], a, spd, out)
        threads = 1 if operation.endswith("1-thread") else None
        with threadpool_limits(limits=threads, user_api="blas"):
            run()  # warm up
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
        rates[operation] = _flops(operation, size) / best / 1e9
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    args = parser.parse_args()
    from kernel_mnist import blas_report

    print(blas_report())
    print(f"GFLOP/s on {args.size} x {args.size} operands (best of {args.repeats})")
    print(f"| dtype | {' | '.join(OPERATIONS)} |")
    print("|---" * (len(OPERATIONS) + 1) + "|")
    for dtype in args.dtypes:
        rates = measure(dtype, args.size, args.repeats)
        print(f"| {dtype} | " + " | ".join(f"{rates[op]:.0f}" for op in OPERATIONS) + " |", flush=True)


if __name__ == "__main__":
    main()
