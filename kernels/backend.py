"""Array backends: the dense operations on single tiles that the blocked solver needs.

The blocking logic (:mod:`harness.kernels.tiles`, :mod:`harness.kernels.cholesky`,
:mod:`harness.kernels.gram`) only calls the methods below and the array module
``xp``, so a GPU backend (CuPy with cuSOLVER ``potrf`` and cuBLAS ``trsm``/``syrk``/
``gemm``) plugs in by implementing the same methods. Tiles are Fortran-ordered
2-D arrays; LAPACK/BLAS never sees more than a tile at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.linalg
from scipy.linalg import blas, lapack
from threadpoolctl import ThreadpoolController


def _blas_operand(matrix: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(array, transposed)`` with ``array`` Fortran-ordered, so BLAS reads ``matrix`` without a copy."""
    if matrix.flags.f_contiguous:
        return matrix, False
    return matrix.T, True


class NumpyBackend:
    """NumPy arrays on the host; SciPy's BLAS and LAPACK called on one tile at a time."""

    name = "numpy"
    device = "cpu"
    xp = np

    def __init__(self) -> None:
        self._threadpools = ThreadpoolController()
        blas_threads = [pool["num_threads"] for pool in self._threadpools.info() if pool["user_api"] == "blas"]
        self.workers = max(blas_threads, default=os.cpu_count() or 1)
        """Threads of :meth:`map_parallel`: as many as BLAS uses."""

    def asarray(self, array, dtype=None) -> np.ndarray:
        """``array`` as a backend array (no copy when it already is one of ``dtype``)."""
        return np.asarray(array, dtype=dtype)

    def to_host(self, array) -> np.ndarray:
        """``array`` as a NumPy array."""
        return np.asarray(array)

    def map_parallel(self, function: Callable, items: Iterable) -> Iterator:
        """``function(item)`` for each item, in order, computed by :attr:`workers` threads each calling
        BLAS on one thread.

        For work that one BLAS call would not spread over the cores: products of tiles with a few
        right-hand sides (memory bandwidth limits them, and OpenBLAS reaches a larger share of it
        with one product per core than with its threads on each product; one thread reads a
        file-backed tile while another computes), and NumPy's single-threaded elementwise passes.
        """
        with self._threadpools.limit(limits=1, user_api="blas"), ThreadPoolExecutor(self.workers) as pool:
            yield from pool.map(function, items)

    def cholesky_in_place(self, tile: np.ndarray) -> int:
        """Overwrite the lower triangle of ``tile`` with its Cholesky factor.

        Returns 0, or the 1-based order of the leading minor that is not positive
        definite (LAPACK's ``info``). The upper triangle is left as it was.
        """
        potrf = lapack.get_lapack_funcs("potrf", (tile,))
        # OpenBLAS's threaded potrf is much slower than one thread on tiles of a few
        # thousand rows; the trailing updates around it stay multi-threaded.
        with self._threadpools.limit(limits=1, user_api="blas"):
            _, info = potrf(tile, lower=True, overwrite_a=True, clean=False)
        if info < 0:
            raise ValueError(f"potrf rejected argument {-info}")
        return info

    def solve_panel(self, diagonal: np.ndarray, tile: np.ndarray) -> None:
        """``tile ← tile · L⁻ᵀ`` in place, ``L`` the lower triangle of ``diagonal``."""
        trsm = blas.get_blas_funcs("trsm", (diagonal, tile))
        trsm(1.0, diagonal, tile, side=1, lower=1, trans_a=1, overwrite_b=1)

    def syrk_update(self, tile: np.ndarray, panel: np.ndarray) -> None:
        """``tile ← tile - panel · panelᵀ`` in place, lower triangle only."""
        operand, transposed = _blas_operand(panel)
        syrk = blas.get_blas_funcs("syrk", (operand, tile))
        syrk(-1.0, operand, beta=1.0, c=tile, trans=int(transposed), lower=1, overwrite_c=1)

    def gemm_update(
        self, tile: np.ndarray, a: np.ndarray, b: np.ndarray, alpha: float = -1.0, beta: float = 1.0
    ) -> None:
        """``tile ← alpha · a · bᵀ + beta · tile`` in place (``beta=0`` ignores the old content)."""
        a_operand, a_transposed = _blas_operand(a)
        b_operand, b_transposed = _blas_operand(b)
        gemm = blas.get_blas_funcs("gemm", (a_operand, b_operand, tile))
        gemm(
            alpha,
            a_operand,
            b_operand,
            beta=beta,
            c=tile,
            trans_a=int(a_transposed),
            trans_b=int(not b_transposed),
            overwrite_c=1,
        )

    def solve_triangular(self, diagonal: np.ndarray, rhs: np.ndarray, transpose: bool) -> np.ndarray:
        """``L⁻¹ rhs`` (or ``L⁻ᵀ rhs``), ``L`` the lower triangle of ``diagonal``; a few right-hand sides."""
        return scipy.linalg.solve_triangular(diagonal, rhs, lower=True, trans=int(transpose), check_finite=False)


def _cupy_backend():
    """The CuPy backend (:mod:`harness.kernels.cuda`), imported only when asked for."""
    from harness.kernels.cuda import CupyBackend

    return CupyBackend()


BACKENDS = {"numpy": NumpyBackend, "cupy": _cupy_backend}
"""Backend constructors by name; CuPy is imported only when its backend is made."""


def gpu_available() -> bool:
    """Whether CuPy is installed and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, or no device: CuPy raises several kinds
        return False


def get_backend(name: str) -> NumpyBackend:
    """A backend instance by name (see :data:`BACKENDS`)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; available: {', '.join(BACKENDS)}")
    return BACKENDS[name]()
