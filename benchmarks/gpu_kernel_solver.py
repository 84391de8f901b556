"""Benchmark: the kernel solver on a GPU (CuPy backend) against cuSOLVER through CuPy and PyTorch.

Sections, each reported even when another fails:

1. environment: CuPy, CUDA, device, memory, measured DGEMM rate and host-to-device bandwidth;
2. correctness: our tiled factorization against ``cupy.linalg.cholesky`` on random SPD
   matrices (float64/float32, on the device/streamed from host memory);
3. MNIST, pixels/255, Gaussian γ=0.02, ridge 0, n=60,000: seconds per stage, test error,
   RKHS norm, factorization TFLOP/s (n³/3 flops) against the FP64 tensor-core peak;
4. the same K factored by ``cupy.linalg.cholesky`` (+ triangular solves), by cuSOLVER
   ``potrf`` in place, by ``torch.linalg.cholesky`` (+ ``torch.cholesky_solve``), and by our
   tiled factorization with several tile sizes;
5. GPU against CPU (NumPy backend) predictions on MNIST n=10,000;
6. out of core: n=60,000 with a device budget that forces the tiles into pinned host memory;
7. with --large N, a synthetic problem of N points (random pixels and labels).

Prints a table per section and writes gpu_kernel_solver.json and .md to --out.

    HARNESS_DATA_ROOT=/data python benchmarks/gpu_kernel_solver.py --out results/gpu
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path

import cupy
import cupy.cublas
import cupyx
import cupyx.scipy.linalg
import numpy as np
from cupy_backends.cuda.libs import cublas, cusolver
from kernel_mnist import data_root, load_mnist

from harness.kernels import solve_kernel_regression
from harness.kernels.backend import get_backend
from harness.kernels.cuda import PinnedTileStore
from harness.kernels.linalg import cholesky_solve
from harness.kernels.memory import available_memory_bytes, default_memory_budget, parse_memory_size
from harness.kernels.plan import plan_storage
from harness.kernels.tiles import MemoryTileStore, TileGrid, TileLayout

FP64_PEAK_TFLOPS = 66.9
"""FP64 tensor-core peak of an H100 SXM (the H200's is the same)."""
GAMMA = 0.02
GPU = get_backend("cupy")
SECTIONS = ("environment", "correctness", "mnist", "baselines", "cpu", "out_of_core", "large")


def synchronize() -> None:
    cupy.cuda.Device().synchronize()


def timed(function, *args, **kwargs):
    """``(result, seconds)`` of ``function(*args, **kwargs)``, the device synchronized around it."""
    synchronize()
    start = time.perf_counter()
    result = function(*args, **kwargs)
    synchronize()
    return result, time.perf_counter() - start


def free_memory() -> None:
    """Return cached device and pinned memory (CuPy's pools, PyTorch's cache)."""
    gc.collect()
    cupy.get_default_memory_pool().free_all_blocks()
    cupy.get_default_pinned_memory_pool().free_all_blocks()
    if "torch" in sys.modules:
        sys.modules["torch"].cuda.empty_cache()


def cholesky_tflops(n: int, seconds: float) -> float:
    return n**3 / 3 / seconds / 1e12


def event_seconds(function, repeats: int) -> float:
    """Median seconds of ``function()`` over ``repeats`` runs, timed with CUDA events after one warm-up."""
    function()
    times = []
    for _ in range(repeats):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
    return float(np.median(times))


# --- 1. environment -------------------------------------------------------------------------------------------


def environment(args) -> dict:
    properties = cupy.cuda.runtime.getDeviceProperties(0)
    free, total = cupy.cuda.runtime.memGetInfo()
    info = {
        "device": properties["name"].decode() if isinstance(properties["name"], bytes) else properties["name"],
        "multiprocessors": properties["multiProcessorCount"],
        "memory_total_GB": total / 1e9,
        "memory_free_GB": free / 1e9,
        "cupy": cupy.__version__,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "host_memory_available_GB": available_memory_bytes() / 1e9,
    }
    try:
        import torch

        info["torch"] = f"{torch.__version__} ({torch.cuda.get_device_name(0)})"
    except Exception as error:  # torch is only needed for section 4
        info["torch"] = f"unavailable: {error}"
    info["dgemm_8192_TFLOPs"] = dgemm_tflops(8192)
    info["h2d_pinned_GBs"], info["d2h_pinned_GBs"] = pinned_bandwidths(2**28)
    _, seconds = timed(cupyx.empty_pinned, 2**30, dtype=np.float64)
    info["pinning_GBs (allocating 8.6 GB of pinned host memory)"] = 2**33 / seconds / 1e9
    return info


def dgemm_tflops(size: int) -> float:
    """Measured float64 matrix-product rate (the ceiling of the factorization's updates)."""
    a, b = cupy.random.standard_normal((size, size)), cupy.random.standard_normal((size, size))
    return 2 * size**3 / event_seconds(lambda: a @ b, 5) / 1e12


def pinned_bandwidths(size: int) -> tuple[float, float]:
    """Host-to-device and device-to-host GB/s of ``size`` float64 from and to pinned memory."""
    host = cupyx.empty_pinned(size, dtype=np.float64)
    host[:] = 1.0
    device = cupy.empty(size, dtype=np.float64)
    upload = event_seconds(lambda: device.set(host), 3)
    download = event_seconds(lambda: device.get(out=host), 3)
    return host.nbytes / upload / 1e9, host.nbytes / download / 1e9


# --- 2. correctness -------------------------------------------------------------------------------------------


def random_spd(n: int, dtype, seed: int):
    g = cupy.random.default_rng(seed).standard_normal((n, n // 2))
    return (g @ g.T / (n // 2) + cupy.eye(n)).astype(dtype)


def to_store(matrix, tile_size: int, pinned: bool):
    grid = TileGrid(matrix.shape[0], tile_size)
    layout = TileLayout(grid, grid, lower=True)
    store = PinnedTileStore(layout, matrix.dtype, GPU) if pinned else MemoryTileStore(layout, matrix.dtype, GPU)
    for i, j in layout.tiles:
        store.write(i, j, matrix[grid.span(i), grid.span(j)])
    return store


def dense_lower(store):
    grid = store.layout.rows
    dense = cupy.zeros((grid.size, grid.size), dtype=store.dtype)
    for i, j in store.layout.tiles:
        dense[grid.span(i), grid.span(j)] = store.read(i, j)
    return cupy.tril(dense)


def check_factorizations(args) -> list[dict]:
    rows = []
    for dtype in (np.float64, np.float32):
        for pinned in (False, True):
            matrix = random_spd(args.spd_size, dtype, seed=len(rows))
            reference = cupy.linalg.cholesky(matrix)
            store = to_store(matrix, args.spd_tile, pinned)
            _, seconds = timed(GPU.tiled_cholesky, store)
            ours = dense_lower(store)
            scale = float(cupy.abs(reference).max())
            rows.append(
                {
                    "dtype": np.dtype(dtype).name,
                    "path": "streamed from pinned host memory" if pinned else "in device memory",
                    "n": args.spd_size,
                    "tile": args.spd_tile,
                    "max |L - L_cupy| / max |L_cupy|": float(cupy.abs(ours - reference).max()) / scale,
                    "|L Lᵀ - A| / |A|": float(cupy.linalg.norm(ours @ ours.T - matrix) / cupy.linalg.norm(matrix)),
                    "seconds": seconds,
                }
            )
            del matrix, reference, store, ours
            free_memory()
    return rows


def check_against_cpu(args) -> dict:
    x_train, y_train, x_test, y_test = load_mnist(data_root(args.data_root), args.cpu_size, 10000)
    targets = np.eye(10)[y_train]
    options = {"kernel": "gaussian", "bandwidth": GAMMA, "dtype": "float64"}
    cpu, cpu_seconds = timed(solve_kernel_regression, x_train, targets, x_test, **options)
    gpu, gpu_seconds = timed(solve_kernel_regression, x_train, targets, x_test, backend="cupy", **options)
    return {
        "n": args.cpu_size,
        "cpu_seconds": cpu_seconds,
        "gpu_seconds": gpu_seconds,
        "cpu_test_error_pct": 100 * cpu.test_error(y_test),
        "gpu_test_error_pct": 100 * gpu.test_error(y_test),
        "max |pred_gpu - pred_cpu|": float(np.abs(gpu.predictions - cpu.predictions).max()),
        "max |pred_cpu|": float(np.abs(cpu.predictions).max()),
        "max |alpha_gpu - alpha_cpu| / max |alpha_cpu|": float(
            np.abs(gpu.alpha - cpu.alpha).max() / np.abs(cpu.alpha).max()
        ),
        "same predicted labels": bool((gpu.predictions.argmax(1) == cpu.predictions.argmax(1)).all()),
        "rkhs_norm cpu / gpu": f"{cpu.rkhs_norm:.6f} / {gpu.rkhs_norm:.6f}",
    }


# --- 3. MNIST n = 60,000 --------------------------------------------------------------------------------------


def solve_pixels(x_train, y_train, x_test, y_test, dtype: str, memory_budget=None, label=""):
    result, wall = timed(
        solve_kernel_regression,
        x_train,
        np.eye(10)[y_train],
        x_test,
        kernel="gaussian",
        bandwidth=GAMMA,
        dtype=dtype,
        memory_budget=memory_budget,
        backend="cupy",
    )
    n = len(x_train)
    return {
        "run": label,
        "n": n,
        "dtype": result.dtype,
        "storage": result.storage,
        "gram_s": result.gram_seconds,
        "factor_s": result.factor_seconds,
        "solve_s": result.solve_seconds,
        "predict_s": result.predict_seconds,
        "end_to_end_s": wall,
        "outside_stages_s": wall
        - result.gram_seconds
        - result.factor_seconds
        - result.solve_seconds
        - result.predict_seconds,
        "factor_TFLOPs": cholesky_tflops(n, result.factor_seconds),
        "factor_pct_of_fp64_peak": 100 * cholesky_tflops(n, result.factor_seconds) / FP64_PEAK_TFLOPS,
        **result.quality(y_train, y_test),
    }


def large_synthetic(args) -> list[dict]:
    """``args.large`` uniformly random "pixel" vectors with random labels: how the solver scales past MNIST."""
    rng = np.random.default_rng(0)
    x_train, x_test = rng.random((args.large, 784), dtype=np.float32), rng.random((10000, 784), dtype=np.float32)
    y_train, y_test = rng.integers(0, 10, args.large), rng.integers(0, 10, 10000)
    return [solve_pixels(x_train, y_train, x_test, y_test, "float64", label=f"synthetic, n={args.large}")]


def mnist_runs(args, data) -> list[dict]:
    x_train, y_train, x_test, y_test = data
    solve_pixels(x_train[:4096], y_train[:4096], x_test[:1000], y_test[:1000], "float64")  # warm-up
    free_memory()
    rows = [solve_pixels(*data, "float64", label="float64, first run")]
    free_memory()
    rows.append(solve_pixels(*data, "float64", label="float64, again"))
    free_memory()
    rows.append(solve_pixels(*data, "float32", label="float32 + refinement"))
    free_memory()
    return rows


def out_of_core(args, data) -> list[dict]:
    """The MNIST solve with a device budget too small for the factor: the tiles stay in pinned host memory.

    Fewer training points are used when the host cannot pin the three matrices.
    """
    x_train, y_train, x_test, y_test = data
    budget = parse_memory_size(args.out_of_core_budget)
    n = len(x_train)
    while n > 10000 and plan_storage(n, len(x_test), 10, "float64", budget).disk_bytes > default_memory_budget():
        n -= 10000
    label = f"float64, device budget {args.out_of_core_budget}"
    return [solve_pixels(x_train[:n], y_train[:n], x_test, y_test, "float64", args.out_of_core_budget, label)]


# --- 4. the same K through other factorizations ---------------------------------------------------------------


def dense_kernel(x):
    """The Gaussian kernel of the rows of ``x`` as one Fortran-ordered float64 matrix, with our fused epilogue."""
    features = cupy.asarray(x, dtype=cupy.float64)
    norms = (features * features).sum(axis=1)
    matrix = cupy.empty((len(x), len(x)), dtype=cupy.float64, order="F")
    cupy.cublas.gemm("N", "T", features, features, out=matrix)
    return GPU.apply_kernel(matrix, norms, norms, "gaussian", GAMMA, same_points=True)


def potrf_in_place(matrix) -> int:
    n = matrix.shape[0]
    handle = cupy.cuda.device.get_cusolver_handle()
    lower = cublas.CUBLAS_FILL_MODE_LOWER
    work_size = cusolver.dpotrf_bufferSize(handle, lower, n, matrix.data.ptr, n)
    workspace = cupy.empty(work_size, dtype=cupy.float64)
    info = cupy.zeros(1, dtype=np.int32)
    cusolver.dpotrf(handle, lower, n, matrix.data.ptr, n, workspace.data.ptr, work_size, info.data.ptr)
    return int(info.get()[0])


def cupy_cholesky_solve(factor, rhs):
    """``(L Lᵀ)⁻¹ rhs`` for the C-ordered ``L`` of ``cupy.linalg.cholesky``: its Lᵀ is Fortran-ordered, so no copies."""
    z = cupyx.scipy.linalg.solve_triangular(factor.T, rhs, lower=False, trans="T")
    return cupyx.scipy.linalg.solve_triangular(factor.T, z, lower=False)


def compare_factorizations(args, data) -> tuple[list[dict], float]:
    x_train, y_train = data[0], data[1]
    n = len(x_train)
    rows = []

    def add(method, factor_seconds, solve_seconds=None, alpha=None, note=""):
        rows.append(
            {
                "method": method,
                "factor_s": factor_seconds,
                "solve_s": solve_seconds,
                "factor_TFLOPs": cholesky_tflops(n, factor_seconds),
                "max |alpha - alpha_ours| / max |alpha_ours|": None if alpha is None else alpha,
                "note": note,
            }
        )

    matrix, gram_seconds = timed(dense_kernel, x_train)
    targets = cupy.asarray(np.eye(10)[y_train])
    alpha_ours = None
    for tile_size in args.tile_sizes:
        store = to_store(matrix, tile_size, pinned=False)
        _, factor_seconds = timed(GPU.tiled_cholesky, store)
        alpha, solve_seconds = timed(cholesky_solve, store, targets)
        difference = None
        if alpha_ours is None:
            alpha_ours = alpha
        else:
            difference = float(cupy.abs(alpha - alpha_ours).max() / cupy.abs(alpha_ours).max())
        add(f"ours, tiles of {tile_size}", factor_seconds, solve_seconds, difference)
        del store, alpha
        free_memory()

    def relative(alpha):
        return float(cupy.abs(alpha - alpha_ours).max() / cupy.abs(alpha_ours).max())

    factor, factor_seconds = timed(cupy.linalg.cholesky, matrix)
    alpha, solve_seconds = timed(cupy_cholesky_solve, factor, targets)
    add(
        "cupy.linalg.cholesky + cupyx solve_triangular",
        factor_seconds,
        solve_seconds,
        relative(alpha),
        "copies K, then cuSOLVER potrf",
    )
    del factor, alpha
    free_memory()

    try:
        import torch

        warm = torch.eye(64, device="cuda", dtype=torch.float64)
        torch.linalg.cholesky(warm)
        k_torch, y_torch = torch.from_dlpack(matrix), torch.from_dlpack(targets)
        factor, factor_seconds = timed(torch.linalg.cholesky, k_torch)
        alpha, solve_seconds = timed(torch.cholesky_solve, y_torch, factor)
        add(
            "torch.linalg.cholesky + torch.cholesky_solve",
            factor_seconds,
            solve_seconds,
            relative(cupy.from_dlpack(alpha)),
            f"preferred linalg library: {torch.backends.cuda.preferred_linalg_library()}",
        )
        del factor, alpha, k_torch, y_torch, warm
    except Exception as error:
        rows.append({"method": "torch.linalg.cholesky", "note": f"failed: {error!r}"})
    free_memory()

    info, factor_seconds = timed(potrf_in_place, matrix)
    add("cuSOLVER dpotrf in place (via cupy_backends)", factor_seconds, note=f"info {info}; no copy")
    del matrix
    free_memory()
    return rows, gram_seconds


# --- report -----------------------------------------------------------------------------------------------------


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e5 else f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_value(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def render(value, level: int = 2) -> str:
    """A section's result as markdown: a table of rows, a table of measurements, sub-sections, or text."""
    if isinstance(value, dict) and "error" in value:
        return "```\n" + value["error"] + "```"
    if isinstance(value, dict) and all(isinstance(item, (list, dict)) for item in value.values()):
        return "\n\n".join(f"{'#' * (level + 1)} {title}\n\n{render(item, level + 1)}" for title, item in value.items())
    if isinstance(value, dict):
        return markdown_table([{"measurement": key, "value": item} for key, item in value.items()])
    if isinstance(value, list):
        return markdown_table(value)
    return format_value(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="folder with MNIST/raw/ (default: $HARNESS_DATA_ROOT)")
    parser.add_argument("--out", type=Path, help="folder for gpu_kernel_solver.json and .md")
    parser.add_argument("--train-size", type=int, default=60000)
    parser.add_argument("--cpu-size", type=int, default=10000, help="MNIST size of the GPU-against-CPU check")
    parser.add_argument("--spd-size", type=int, default=5000)
    parser.add_argument("--spd-tile", type=int, default=1024)
    parser.add_argument("--tile-sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--out-of-core-budget", default="6GB", help="device budget of the out-of-core run")
    parser.add_argument("--large", type=int, default=0, help="size of an extra synthetic run (0: none)")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to skip")
    args = parser.parse_args()

    report, started, data = {}, time.perf_counter(), []

    def mnist():
        if not data:
            data.extend(load_mnist(data_root(args.data_root), args.train_size, 10000))
        return data

    def baselines():
        rows, gram_seconds = compare_factorizations(args, mnist())
        return {"factorizations": rows, "dense K": {"seconds to build K (n×n, fused epilogue)": gram_seconds}}

    sections = {
        "environment": lambda: environment(args),
        "correctness": lambda: check_factorizations(args),
        "mnist": lambda: mnist_runs(args, mnist()),
        "baselines": baselines,
        "cpu": lambda: check_against_cpu(args),
        "out_of_core": lambda: out_of_core(args, mnist()),
        "large": lambda: large_synthetic(args),
    }
    if not args.large:
        del sections["large"]
    for name, function in sections.items():
        if name in args.skip:
            continue
        print(f"\n=== {name} ({time.perf_counter() - started:.0f} s since start)", flush=True)
        try:
            report[name] = function()
        except Exception:
            report[name] = {"error": traceback.format_exc()}
        free_memory()
        print(render(report[name]), flush=True)
        report["total_seconds"] = time.perf_counter() - started
        write_report(report, args.out)  # after every section, in case a later one does not finish
    report["cifar10"] = (
        "not here: Table 3's CIFAR-10 rows are benchmarks/table3_cifar_gpu.sh (run by scripts/reproduce-gpu.sh)"
    )
    print("\n=== summary\n\n" + write_report(report, args.out), flush=True)


def write_report(report: dict, folder: Path | None) -> str:
    """The report as markdown; also written with the JSON to ``folder`` when given."""
    device = report.get("environment", {}).get("device", "unknown device")
    summary = f"# GPU kernel solver on {device}\n\n" + "\n\n".join(
        f"## {name}\n\n{render(value)}" for name, value in report.items()
    )
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "gpu_kernel_solver.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (folder / "gpu_kernel_solver.md").write_text(summary + "\n")
    return summary


if __name__ == "__main__":
    main()
