"""The CuPy backend of the kernel solver.

The streamed (out-of-core) Cholesky's schedule runs here on NumPy with a simulated
device that executes queued copies and tile operations in random orders allowed by
their streams and events. The tests marked ``gpu`` need CuPy and a CUDA device
(they run by default where both are present and skip, saying so, where not); they compare every GPU
path with the NumPy backend.
"""

import subprocess
import sys
from collections import deque
from functools import partial

import numpy as np
import pytest
from tile_helpers import lower_part

from harness.kernel_runner import kernel_backend
from harness.kernels import NotPositiveDefiniteError, solve_kernel_regression
from harness.kernels.backend import NumpyBackend, get_backend, gpu_available
from harness.kernels.cuda_streamed import streamed_cholesky
from harness.kernels.gram import apply_kernel
from harness.kernels.linalg import cholesky_operation_count
from harness.kernels.progress import StageProgress
from harness.kernels.tiles import MemoryTileStore, TileGrid, TileLayout


def gpu_test(function):
    """Marked ``gpu``, and skipped unless CuPy sees a CUDA device."""
    return pytest.mark.gpu(pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")(function))


def random_spd(size, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size))
    return (a @ a.T / size + np.eye(size)).astype(dtype)


def fill(store, matrix):
    grid = store.layout.rows
    for i, j in store.layout.tiles:
        store.write(i, j, matrix[grid.span(i), grid.span(j)])
    return store


def lower_layout(size, tile):
    grid = TileGrid(size, tile)
    return TileLayout(grid, grid, lower=True)


class HostTiles(MemoryTileStore):
    """NumPy tiles that the streamed Cholesky sees as host tiles."""

    def host_tile(self, i, j):
        return self.read(i, j)


class Event:
    done = False


class SimulatedStreams:
    """A NumPy engine for :func:`streamed_cholesky` that runs like an asynchronous device.

    Each stream is a queue; an operation runs once everything before it on its
    stream and the events it waits for are done. Between calls, and when
    synchronized, a random stream with a runnable operation goes next, so a missing
    wait or a buffer reused too early gives a wrong factor. Buffers start as NaN.
    """

    def __init__(self, seed, honour_waits=True):
        self.rng, self.honour_waits = np.random.default_rng(seed), honour_waits
        self.streams = {name: deque() for name in ("compute", "upload", "download")}

    def empty(self, size, dtype):
        return np.full(size, np.nan, dtype=dtype)

    def upload(self, host, device, after=()):
        return self._queue("upload", partial(np.copyto, device, host), after)

    def download(self, device, host, after=()):
        return self._queue("download", partial(np.copyto, host, device), after)

    def compute(self, function, *args, after=()):
        return self._queue("compute", partial(function, *args), after)

    def synchronize(self):
        while any(self.streams.values()):
            self._step()

    def _queue(self, stream, operation, after):
        event = Event()
        waits = [e for e in after if e is not None] if self.honour_waits else []
        self.streams[stream].append((operation, waits, event))
        for _ in range(self.rng.integers(0, 3)):
            self._step()
        return event

    def _step(self):
        runnable = [queue for queue in self.streams.values() if queue and all(e.done for e in queue[0][1])]
        if not runnable:
            assert not any(self.streams.values()), "the streams wait on each other"
            return
        operation, _, event = runnable[self.rng.integers(len(runnable))].popleft()
        operation()
        event.done = True


@pytest.mark.parametrize("size, tile", [(100, 16), (64, 16), (10, 16), (50, 7)])
@pytest.mark.parametrize("seed", range(8))
def test_streamed_cholesky_matches_numpy_in_any_order_the_streams_allow(size, tile, seed):
    matrix = random_spd(size, seed)
    store = fill(HostTiles(lower_layout(size, tile), np.float64, NumpyBackend()), matrix)
    progress = StageProgress(None, "factor", cholesky_operation_count(store.layout.rows.count))

    streamed_cholesky(store, SimulatedStreams(seed), progress)

    assert progress.done == progress.total
    np.testing.assert_allclose(lower_part(store), np.linalg.cholesky(matrix), atol=1e-12)


def test_the_simulation_catches_missing_waits():
    matrix = random_spd(100)
    wrong = 0
    for seed in range(8):
        store = fill(HostTiles(lower_layout(100, 16), np.float64, NumpyBackend()), matrix)
        try:
            streamed_cholesky(store, SimulatedStreams(seed, honour_waits=False))
        except NotPositiveDefiniteError:
            wrong += 1
            continue
        wrong += not np.allclose(lower_part(store), np.linalg.cholesky(matrix), atol=1e-12)
    assert wrong >= 4


def test_streamed_cholesky_names_the_failing_pivot_row():
    matrix = random_spd(60)
    matrix[37, :] = matrix[:, 37] = 0.0  # a zero pivot in the third tile
    store = fill(HostTiles(lower_layout(60, 16), np.float64, NumpyBackend()), matrix)
    with pytest.raises(NotPositiveDefiniteError, match=r"pivot row 37 \(0-based\) of 60"):
        streamed_cholesky(store, SimulatedStreams(0))


def test_importing_the_solver_does_not_import_cupy():
    code = "import sys, harness.kernels, harness.kernel_runner, harness.cli.kernel; assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(gpu_available(), reason="CuPy sees a CUDA device here")
def test_cuda_device_needs_a_gpu():
    assert kernel_backend("auto") == "numpy"
    with pytest.raises(ValueError, match="sees no CUDA device"):
        kernel_backend("cuda")


@gpu_test
def test_cuda_and_auto_use_cupy_on_a_gpu():
    assert kernel_backend("cuda") == kernel_backend("auto") == "cupy" and kernel_backend("cpu") == "numpy"


def test_gpu_available_is_false_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # importing it raises ImportError
    assert gpu_available() is False


# --- on a GPU ---------------------------------------------------------------------------------------------------

TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


def assert_close(actual, expected, dtype):
    tolerance = TOLERANCE[dtype]
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * np.abs(expected).max())


def on_device(backend, array):
    return backend.xp.asfortranarray(backend.asarray(array))


@gpu_test
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tile_operations_match_numpy(dtype):
    rng = np.random.default_rng(1)
    spd = random_spd(300, 2, dtype)
    panel = rng.standard_normal((200, 300)).astype(dtype)
    features, others = rng.standard_normal((200, 70)).astype(dtype), rng.standard_normal((300, 70)).astype(dtype)
    rhs = rng.standard_normal((300, 5)).astype(dtype)

    def run(backend):
        diagonal, tile, square = (on_device(backend, m) for m in (spd, panel, spd[:200, :200]))
        assert backend.cholesky_in_place(diagonal) == 0
        backend.solve_panel(diagonal, tile)
        backend.syrk_update(square, tile)
        product = on_device(backend, np.zeros((200, 300), dtype))
        # C-ordered operands, as feature blocks are
        backend.gemm_update(product, backend.asarray(features), backend.asarray(others), alpha=2.0, beta=0.0)
        solved = backend.solve_triangular(diagonal, backend.asarray(rhs), transpose=True)
        host = [backend.to_host(x) for x in (diagonal, tile, square, product, solved)]
        return [np.tril(host[0]), host[1], np.tril(host[2]), host[3], host[4]]

    for actual, expected in zip(run(get_backend("cupy")), run(NumpyBackend())):
        assert_close(actual, expected, dtype)


@gpu_test
def test_potrf_reports_the_failing_minor():
    gpu = get_backend("cupy")
    matrix = random_spd(50)
    matrix[20, 20] = -1.0
    assert gpu.cholesky_in_place(on_device(gpu, matrix)) == 21


@gpu_test
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel, bandwidth", [("gaussian", 0.3), ("laplacian", 0.7), ("linear", None)])
@pytest.mark.parametrize("same_points", [False, True])
def test_fused_epilogue_matches_apply_kernel(dtype, kernel, bandwidth, same_points):
    gpu, rng = get_backend("cupy"), np.random.default_rng(4)
    x = rng.random((130, 20))
    y = x[:90] if same_points else rng.random((90, 20))
    gram = np.asfortranarray((x @ y.T).astype(dtype))
    x_norms, y_norms = (x * x).sum(1), (y * y).sum(1)
    expected = apply_kernel(gram.copy(order="F"), x_norms, y_norms, kernel, bandwidth, np, same_points)

    tile = on_device(gpu, gram)
    gpu.apply_kernel(tile, gpu.asarray(x_norms), gpu.asarray(y_norms), kernel, bandwidth, same_points=same_points)

    assert_close(gpu.to_host(tile), expected, dtype)
    if same_points and kernel != "linear":
        assert (np.diagonal(gpu.to_host(tile)) == 1).all()


@gpu_test
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", [230, 48])
def test_streamed_cholesky_on_the_gpu_matches_numpy(dtype, size):
    from harness.kernels.cuda import CudaStreams, PinnedTileStore

    gpu = get_backend("cupy")
    matrix = random_spd(size, 3, dtype)
    store = fill(PinnedTileStore(lower_layout(size, 64), dtype, gpu), matrix)

    streamed_cholesky(store, CudaStreams())

    assert_close(lower_part(store), np.linalg.cholesky(matrix.astype(np.float64)), dtype)


# Device budgets that keep the matrices of these problems (tiles of 64) in pinned host memory.
HOST_BUDGET = {"solve": "440kB", "breakdown": "300kB"}
# GPU against CPU: float32 tiles round K differently (other summation orders), and K's conditioning amplifies that.
AGREEMENT = {"float64": 1e-8, "float32": 3e-3}


@gpu_test
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("budget", [None, HOST_BUDGET["solve"]])
@pytest.mark.parametrize("kernel, bandwidth, ridge", [("gaussian", 0.05, 0.0), ("laplacian", 0.2, 1e-3)])
def test_solver_on_the_gpu_matches_numpy(dtype, budget, kernel, bandwidth, ridge):
    rng = np.random.default_rng(5)
    x_train, x_test = rng.random((300, 40)).astype(np.float32), rng.random((70, 40)).astype(np.float32)
    y = np.eye(10)[rng.integers(0, 10, 300)]
    options = {"kernel": kernel, "bandwidth": bandwidth, "ridge": ridge, "dtype": dtype, "tile_size": 64}

    cpu = solve_kernel_regression(x_train, y, x_test, **options)
    gpu = solve_kernel_regression(x_train, y, x_test, backend="cupy", memory_budget=budget, **options)

    assert (gpu.backend, gpu.device, gpu.dtype) == ("cupy", "cuda", dtype)
    assert ("factor in host memory" in gpu.storage) == (budget is not None), gpu.storage
    assert gpu.relative_residual < 1e-9
    tolerance = AGREEMENT[dtype]
    for name in ("alpha", "predictions", "train_predictions"):
        expected = getattr(cpu, name)
        np.testing.assert_allclose(getattr(gpu, name), expected, rtol=0, atol=tolerance * np.abs(expected).max())
    assert gpu.rkhs_norm == pytest.approx(cpu.rkhs_norm, rel=tolerance)


@gpu_test
@pytest.mark.parametrize("budget", [None, HOST_BUDGET["breakdown"]])
def test_gpu_breakdown_names_the_pivot_row_or_adds_jitter(budget):
    features = np.zeros((200, 200), dtype=np.float32)
    features[np.arange(150), np.arange(150)] = 1.0
    features[150, 0] = 1.0  # row 150 duplicates row 0
    features[151:, 151:] = np.eye(49)
    y = np.eye(10)[np.arange(200) % 10]
    options = {"kernel": "linear", "tile_size": 64, "backend": "cupy", "memory_budget": budget}
    with pytest.raises(NotPositiveDefiniteError, match=r"pivot row 150 \(0-based\) of 200"):
        solve_kernel_regression(features, y, features[:5], strict=True, **options)
    result = solve_kernel_regression(features, y, features[:5], **options)
    assert result.jitter >= 1e-10 and np.isfinite(result.predictions).all()
