"""Benchmark: our tiled kernel solver vs scikit-learn KernelRidge and scipy.linalg.solve on MNIST.

Gaussian kernel exp(-γ‖x-y‖²), γ=0.02, on pixels/255, interpolation (ridge 0, or a
tiny one for KernelRidge). ``ours-auto`` is the solver's default (what ``harness
kernel`` runs). Each method runs in its own subprocess so its peak RSS is its own.
Prints this machine's BLAS rates, then a table with our stages' GFLOP/s beside
them; with --out also writes kernel_solvers.csv and .md there.

NumPy's bundled OpenBLAS (0.3.31.dev, SkylakeX kernels, 2 threads) crashes in the
``X @ X.T`` (syrk) that scikit-learn's rbf_kernel calls once n reaches about 16,000;
``OPENBLAS_CORETYPE=Haswell`` avoids it, for every method alike (the subprocesses
inherit the environment). The first line printed names the BLAS kernels in use.

    python benchmarks/kernel_solvers.py --sizes 5000 10000 20000
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.linalg
from kernel_mnist import blas_rates_line, blas_report, data_root, load_mnist, stage_gflops
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel

from harness.kernels import solve_kernel_regression
from harness.kernels.memory import peak_rss_bytes

METHODS = ("ours-auto", "ours-float64", "ours-float32", "sklearn", "scipy")
REFERENCE = "scipy"


def run_method(method: str, x_train, y_train, x_test, gamma: float):
    """Test scores of one method and a dict of extra measurements."""
    onehot = np.eye(10)[y_train]
    if method.startswith("ours"):
        result = solve_kernel_regression(
            x_train, onehot, x_test, kernel="gaussian", bandwidth=gamma, dtype=method.split("-")[1]
        )
        rates = stage_gflops(result, len(x_train), len(x_test))
        extra = {
            "dtype": result.dtype,
            "relative_residual": result.relative_residual,
            "refinement_steps": result.refinement_steps,
            "rkhs_norm": result.rkhs_norm,
            "stages": f"gram {result.gram_seconds:.1f}s, factor {result.factor_seconds:.1f}s, "
            f"solve {result.solve_seconds:.1f}s, predict {result.predict_seconds:.1f}s",
            "gflops": ", ".join(f"{stage} {rate:.0f}" for stage, rate in rates.items()),
        }
        return result.predictions, extra
    x_train, x_test = x_train.astype(np.float64), x_test.astype(np.float64)
    if method == "sklearn":
        model = KernelRidge(kernel="rbf", gamma=gamma, alpha=1e-10).fit(x_train, onehot)
        return model.predict(x_test), {}
    alpha = scipy.linalg.solve(rbf_kernel(x_train, gamma=gamma), onehot, assume_a="pos")
    return rbf_kernel(x_test, x_train, gamma=gamma) @ alpha, {}


def worker(args) -> None:
    """Run one method; print its measurements as JSON and save its scores to --scores."""
    x_train, y_train, x_test, y_test = load_mnist(data_root(args.data_root), args.train_size, args.test_size)
    start = time.perf_counter()
    scores, extra = run_method(args.worker, x_train, y_train, x_test, args.gamma)
    seconds = time.perf_counter() - start
    np.save(args.scores, scores)
    test_error = float(np.mean(scores.argmax(axis=1) != y_test))
    print(json.dumps({"seconds": seconds, "test_error": test_error, "peak_rss": peak_rss_bytes(), **extra}))


def measure(method: str, train_size: int, args, folder: Path) -> dict:
    scores = folder / f"{method}-{train_size}.npy"
    command = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--train-size",
        str(train_size),
        "--test-size",
        str(args.test_size),
        "--gamma",
        str(args.gamma),
        "--scores",
        str(scores),
    ]
    if args.data_root:
        command += ["--data-root", args.data_root]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        last_line = (completed.stderr.strip().splitlines() or [""])[-1]
        return {"method": method, "train_size": train_size, "error": f"exit code {completed.returncode} {last_line}"}
    return {
        "method": method,
        "train_size": train_size,
        "scores": scores,
        **json.loads(completed.stdout.splitlines()[-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="folder with MNIST/raw/ (default: $HARNESS_DATA_ROOT)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--test-size", type=int, default=10000)
    parser.add_argument("--gamma", type=float, default=0.02)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, help="folder for kernel_solvers.csv and kernel_solvers.md")
    parser.add_argument("--blas-size", type=int, default=2048, help="operand size of the BLAS rate measurement")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--train-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scores", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    print(blas_report(), flush=True)
    print(blas_rates_line(args.blas_size), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kernel-bench-") as folder:
        for size in args.sizes:
            results = {method: measure(method, size, args, Path(folder)) for method in args.methods}
            reference = results.get(REFERENCE, {}).get("scores")
            for result in results.values():
                rows.append(_row(result, results, reference))
                print(_format(rows[-1]), flush=True)
    if args.out:
        _write(rows, args.out)


def _row(result: dict, results: dict, reference) -> dict:
    row = {"train_size": result["train_size"], "method": result["method"]}
    if "error" in result:
        return {**row, "failure": result["error"]}
    row.update(
        seconds=round(result["seconds"], 2),
        test_error_pct=round(100 * result["test_error"], 3),
        peak_rss_gb=round(result["peak_rss"] / 1e9, 2),
    )
    for other in ("sklearn", "scipy"):
        if results.get(other, {}).get("seconds") and other != result["method"]:
            row[f"speedup_vs_{other}"] = round(results[other]["seconds"] / result["seconds"], 2)
    if reference is not None:
        row["max_abs_diff_vs_scipy"] = float(np.abs(np.load(result["scores"]) - np.load(reference)).max())
    for key in ("dtype", "relative_residual", "refinement_steps", "rkhs_norm", "stages", "gflops"):
        if key in result:
            row[key] = result[key]
    return row


def _cell(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _format(row: dict) -> str:
    return "  ".join(f"{key}={_cell(value)}" for key, value in row.items())


def _write(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(out / "kernel_solvers.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    (out / "kernel_solvers.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
