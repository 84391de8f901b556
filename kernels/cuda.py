"""CuPy backend: the kernel solver's tile operations on an NVIDIA GPU.

Tiles are Fortran-ordered device arrays. The diagonal tiles are factored by
cuSOLVER's ``potrf``, the panels and trailing updates go to cuBLAS ``trsm``,
``syrk`` and ``gemm`` (float64 runs on the FP64 tensor cores of Ampere and Hopper
GPUs), and the Gaussian/Laplacian epilogue turns a Gram tile into a kernel tile in
one fused pass. Matrices beyond the device memory budget stay in pinned host
memory (:class:`PinnedTileStore`) and are streamed through the GPU
(:func:`harness.kernels.cuda_streamed.streamed_cholesky`).
"""

from __future__ import annotations

import cupy
import cupy.cublas
import cupyx
import cupyx.scipy.linalg
import numpy as np
from cupy_backends.cuda.libs import cublas, cusolver

from harness.kernels.cuda_streamed import streamed_cholesky, tile_view
from harness.kernels.linalg import tiled_cholesky
from harness.kernels.tiles import TileStore

DEVICE_BUDGET_FRACTION = 0.85
"""Share of the free device memory used when no budget is given (the rest: CUDA libraries, feature blocks)."""

_EPILOGUE_SOURCE = r"""
template <typename T>
__global__ void kernel_epilogue(T* tile, const double* row_norms, const double* col_norms, long long rows,
                                long long size, T gamma, int laplacian, int same_points) {
  long long stride = (long long)blockDim.x * gridDim.x;
  for (long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x; index < size; index += stride) {
    long long row = index % rows, col = index / rows;
    T value = (T)2 * tile[index] - (T)row_norms[row] - (T)col_norms[col];  // -|x - y|^2
    value = value > (T)0 ? (T)0 : value;
    value = laplacian ? exp(-gamma * sqrt(-value)) : exp(gamma * value);
    tile[index] = same_points && row == col ? (T)1 : value;
  }
}
"""
_EPILOGUE_THREADS = 256
_EPILOGUE_MAX_BLOCKS = 1 << 20


@cupy.memoize(for_each_device=True)
def _epilogue_kernel(dtype_name: str):
    """The compiled epilogue for float32 or float64 tiles."""
    module = cupy.RawModule(
        code=_EPILOGUE_SOURCE, name_expressions=("kernel_epilogue<float>", "kernel_epilogue<double>")
    )
    return module.get_function(f"kernel_epilogue<{'float' if dtype_name == 'float32' else 'double'}>")


def _routine(library, name: str, dtype):
    """``library``'s single- or double-precision routine ``name``, e.g. ``dpotrf`` for float64."""
    prefix = {"float32": "s", "float64": "d"}[np.dtype(dtype).name]
    return getattr(library, prefix + name)


def _fortran(tile):
    """``tile``, checked to be Fortran-ordered (the layout cuBLAS and cuSOLVER are given)."""
    if not tile.flags.f_contiguous:
        raise ValueError(f"expected a Fortran-ordered tile, got strides {tile.strides}")
    return tile


class CupyBackend:
    """CuPy arrays on the current CUDA device; cuSOLVER and cuBLAS called on one tile at a time."""

    name = "cupy"
    device = "cuda"
    xp = cupy

    def asarray(self, array, dtype=None):
        """``array`` on the device, in its memory order (uploaded in its own dtype, then cast there)."""
        array = cupy.asarray(array, order="K")
        return array if dtype is None else array.astype(dtype, copy=False)

    def to_host(self, array) -> np.ndarray:
        return cupy.asnumpy(array)

    def map_parallel(self, function, items):
        """``function(item)`` for each item, in order: one at a time, the GPU runs them in its own order."""
        return map(function, items)

    def synchronize(self) -> None:
        """Wait for the work queued on the device."""
        cupy.cuda.Device().synchronize()

    def default_memory_budget(self) -> int:
        """:data:`DEVICE_BUDGET_FRACTION` of the device memory that is free or cached by CuPy."""
        free, _ = cupy.cuda.runtime.memGetInfo()
        return int(DEVICE_BUDGET_FRACTION * (free + cupy.get_default_memory_pool().free_bytes()))

    def host_store(self, layout, dtype) -> PinnedTileStore:
        """A store for a matrix that stays off the device."""
        return PinnedTileStore(layout, dtype, self)

    def tiled_cholesky(self, store, progress=None) -> None:
        """Factor ``store`` in place: right-looking on the device, or streamed from pinned host memory."""
        if isinstance(store, PinnedTileStore):
            streamed_cholesky(store, CudaStreams(), progress)
        else:
            tiled_cholesky(store, progress)

    def cholesky_in_place(self, tile) -> int:
        """Overwrite the lower triangle of ``tile`` with its Cholesky factor (cuSOLVER ``potrf``).

        Returns 0 or the 1-based order of the leading minor that is not positive definite;
        waits for the device to know it.
        """
        n = _fortran(tile).shape[0]
        handle = cupy.cuda.device.get_cusolver_handle()
        lower = cublas.CUBLAS_FILL_MODE_LOWER
        work_size = _routine(cusolver, "potrf_bufferSize", tile.dtype)(handle, lower, n, tile.data.ptr, n)
        workspace = cupy.empty(max(work_size, 1), dtype=tile.dtype)
        info = cupy.zeros(1, dtype=np.int32)
        _routine(cusolver, "potrf", tile.dtype)(
            handle, lower, n, tile.data.ptr, n, workspace.data.ptr, work_size, info.data.ptr
        )
        info = int(info.get()[0])
        if info < 0:
            raise ValueError(f"potrf rejected argument {-info}")
        return info

    def solve_panel(self, diagonal, tile) -> None:
        """``tile ← tile · L⁻ᵀ`` in place, ``L`` the lower triangle of ``diagonal`` (cuBLAS ``trsm``)."""
        rows, cols = _fortran(tile).shape
        one = np.ones(1, dtype=tile.dtype)
        _routine(cublas, "trsm", tile.dtype)(
            cupy.cuda.device.get_cublas_handle(),
            cublas.CUBLAS_SIDE_RIGHT,
            cublas.CUBLAS_FILL_MODE_LOWER,
            cublas.CUBLAS_OP_T,
            cublas.CUBLAS_DIAG_NON_UNIT,
            rows,
            cols,
            one.ctypes.data,
            _fortran(diagonal).data.ptr,
            diagonal.shape[0],
            tile.data.ptr,
            rows,
        )

    def syrk_update(self, tile, panel) -> None:
        """``tile ← tile - panel · panelᵀ`` in place, lower triangle only."""
        cupy.cublas.syrk("N", panel, out=_fortran(tile), alpha=-1.0, beta=1.0, lower=True)

    def gemm_update(self, tile, a, b, alpha: float = -1.0, beta: float = 1.0) -> None:
        """``tile ← alpha · a · bᵀ + beta · tile`` in place (``beta=0`` ignores the old content)."""
        cupy.cublas.gemm("N", "T", a, b, out=_fortran(tile), alpha=alpha, beta=beta)

    def solve_triangular(self, diagonal, rhs, transpose: bool):
        """``L⁻¹ rhs`` (or ``L⁻ᵀ rhs``), ``L`` the lower triangle of ``diagonal``."""
        return cupyx.scipy.linalg.solve_triangular(diagonal, rhs, trans="T" if transpose else "N", lower=True)

    def apply_kernel(self, tile, row_sq_norms, col_sq_norms, kernel: str, bandwidth, same_points: bool = False):
        """:func:`harness.kernels.gram.apply_kernel` as one kernel launch: each element is read and written once."""
        if kernel == "linear":
            return tile
        rows, size = tile.shape[0], tile.size
        blocks = min(-(-size // _EPILOGUE_THREADS), _EPILOGUE_MAX_BLOCKS)
        _epilogue_kernel(tile.dtype.name)(
            (blocks,),
            (_EPILOGUE_THREADS,),
            (
                _fortran(tile),
                cupy.ascontiguousarray(row_sq_norms, dtype=cupy.float64),
                cupy.ascontiguousarray(col_sq_norms, dtype=cupy.float64),
                np.int64(rows),
                np.int64(size),
                tile.dtype.type(bandwidth),
                np.int32(kernel == "laplacian"),
                np.int32(same_points),
            ),
        )
        return tile


class PinnedTileStore(TileStore):
    """Tiles in pinned (page-locked) host memory, for matrices beyond the device budget.

    :meth:`read` copies a tile to a new device array and :meth:`write` copies one
    back, both on the current stream (asynchronously, in order with the work
    around them); :meth:`host_tile` is the host view that the streamed Cholesky uses.
    """

    in_memory = False

    def __init__(self, layout, dtype, backend):
        super().__init__(layout, dtype, backend)
        self._buffer = cupyx.empty_pinned(layout.size, dtype=self.dtype)

    def host_tile(self, i: int, j: int) -> np.ndarray:
        return tile_view(self._buffer, self.layout.offset(i, j), self.layout.shape(i, j))

    def read(self, i: int, j: int):
        host = self.host_tile(i, j)
        tile = cupy.empty(host.shape, dtype=self.dtype, order="F")
        _copy(tile.data.ptr, host.ctypes.data, host.nbytes, cupy.cuda.runtime.memcpyHostToDevice)
        return tile

    def write(self, i: int, j: int, tile) -> None:
        host = self.host_tile(i, j)
        tile = cupy.asarray(tile, dtype=self.dtype, order="F")
        _copy(host.ctypes.data, tile.data.ptr, host.nbytes, cupy.cuda.runtime.memcpyDeviceToHost)


def _copy(target: int, source: int, nbytes: int, kind: int, stream=None):
    """Copy ``nbytes`` between host and device asynchronously on ``stream`` (default: the current one)."""
    stream = stream if stream is not None else cupy.cuda.get_current_stream()
    cupy.cuda.runtime.memcpyAsync(target, source, nbytes, kind, stream.ptr)


class CudaStreams:
    """The engine of :func:`~harness.kernels.cuda_streamed.streamed_cholesky` on a GPU.

    Computation runs on the current stream; uploads and write-backs each run on
    a non-blocking stream of their own, so they overlap the computation and each
    other. Every operation waits for the CUDA events it is given and returns one.
    """

    def __init__(self):
        self.compute_stream = cupy.cuda.get_current_stream()
        self.upload_stream = cupy.cuda.Stream(non_blocking=True)
        self.download_stream = cupy.cuda.Stream(non_blocking=True)

    def empty(self, size: int, dtype):
        return cupy.empty(size, dtype=dtype)

    def upload(self, host: np.ndarray, device, after=()):
        _wait(self.upload_stream, after)
        _copy(device.data.ptr, host.ctypes.data, host.nbytes, cupy.cuda.runtime.memcpyHostToDevice, self.upload_stream)
        return _record(self.upload_stream)

    def download(self, device, host: np.ndarray, after=()):
        _wait(self.download_stream, after)
        _copy(
            host.ctypes.data, device.data.ptr, host.nbytes, cupy.cuda.runtime.memcpyDeviceToHost, self.download_stream
        )
        return _record(self.download_stream)

    def compute(self, function, *args, after=()):
        _wait(self.compute_stream, after)
        function(*args)
        return _record(self.compute_stream)

    def synchronize(self) -> None:
        cupy.cuda.Device().synchronize()


def _wait(stream, events) -> None:
    for event in events:
        if event is not None:
            stream.wait_event(event)


def _record(stream):
    event = cupy.cuda.Event(disable_timing=True)
    event.record(stream)
    return event
