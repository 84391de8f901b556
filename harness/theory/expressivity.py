"""Theorem 1: a depth-2 ReLU network with 2n + d weights fits any n labelled points.

The network is c(x) = Σ_j w_j max(⟨a, x⟩ − b_j, 0), with a ∈ R^d and b, w ∈ R^n.
Its construction for a sample (z_i, y_i), i = 1..n (:func:`construct`):

1. Draw a random unit Gaussian direction a and check that the projections
   x_i = ⟨a, z_i⟩ are pairwise distinct (redraw otherwise).
2. Sort them, x_1 < … < x_n, and interleave the biases as in Lemma 1,
   b_1 < x_1 < b_2 < x_2 < … < b_n < x_n, with the spacing
   b_i = x_i − δ (x_i − x_{i−1}), 0 < δ < 1 the *gap fraction*
   (δ = 1/2: each bias at the midpoint between consecutive projections;
   the first one uses the virtual projection x_0 = x_1 − (x_2 − x_1)).
3. On the sample the outputs are A w with A_ij = max(x_i − b_j, 0): lower
   triangular, with diagonal x_i − b_i > 0, so A has full rank and its
   eigenvalues are that diagonal. Solve A w = y by forward substitution.

The construction runs in float64; the network can then be evaluated in
float32 or float64 (:func:`summarize`).

Numerical limit. Between consecutive biases the network is linear; matching
y_i at every x_i forces its slopes to follow
s_{i+1} = (y_{i+1} − y_i) / (δ g_i) − s_i (1 − δ) / δ, with g_i = x_{i+1} − x_i,
and w_{i+1} = s_{i+1} − s_i. For δ < 1/2 the slopes, hence ‖w‖, grow like
((1 − δ) / δ)^n while λ_min(A) = δ · min_i g_i stays moderate: A is far from
normal, so its smallest eigenvalue does not bound the weights (its smallest
singular value does: ‖w‖ ≤ ‖y‖ / σ_min(A)). δ = 1/2 is the borderline case
(alternating sums of 2 Δy / g); δ > 1/2 damps the slopes. Even then ‖w‖ scales
like 1 / min_i g_i, so a float32 network, whose projections are rounded to
about 1e-7 relative, stops fitting once the gaps get that small.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import nn

from harness.errors import ConfigError
from harness.theory.samples import gaussian_sample


def project(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """⟨a, x⟩ for each row of ``x`` (N, d) or each image of ``x`` (N, ...) flattened."""
    return x.flatten(1).to(a.dtype) @ a


class DepthTwoReLU(nn.Module):
    """c(x) = Σ_j w_j max(⟨a, x⟩ − b_j, 0): n ReLUs that share one direction a."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, w: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a)
        self.b = nn.Parameter(b)
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d) inputs, or (N, ...) images flattened to d, -> (N,) outputs."""
        return torch.relu(project(x, self.a)[:, None] - self.b) @ self.w

    @property
    def n_weights(self) -> int:
        """Number of weights: d + 2n."""
        return sum(p.numel() for p in self.parameters())


@dataclass(frozen=True)
class Construction:
    """Theorem 1's network for one sample, with what fixed its weights.

    ``projections`` are the sorted x_i and ``matrix`` is A
    (the labels in the order of the projections are A @ w).
    """

    model: DepthTwoReLU
    projections: np.ndarray
    biases: np.ndarray
    matrix: np.ndarray
    gap_fraction: float


def distinct_projections(z: np.ndarray, rng: np.random.Generator, tries: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A random unit direction a whose projections ⟨a, z_i⟩ are pairwise distinct, and those projections."""
    for _ in range(tries):
        a = rng.standard_normal(z.shape[1])
        a /= np.linalg.norm(a)
        x = project(torch.from_numpy(z), torch.from_numpy(a)).numpy()
        if np.unique(x).size == x.size:
            return a, x
    raise ConfigError(f"no direction with pairwise distinct projections in {tries} draws: the sample repeats a point")


def interleaved_biases(x: np.ndarray, gap_fraction: float = 0.5) -> np.ndarray:
    """Biases b_i = x_i − δ (x_i − x_{i−1}) for sorted projections ``x`` and δ = ``gap_fraction``."""
    if not 0 < gap_fraction < 1:
        raise ConfigError(f"gap fraction must lie in (0, 1), got {gap_fraction}")
    first_gap = x[1] - x[0] if len(x) > 1 else 1.0
    return x - gap_fraction * np.diff(x, prepend=x[0] - first_gap)


def check_interleaved(x: np.ndarray, b: np.ndarray) -> None:
    """Raise ConfigError unless b_1 < x_1 < b_2 < x_2 < … < b_n < x_n (Lemma 1's hypothesis)."""
    previous = np.concatenate(([-np.inf], x[:-1]))
    bad = np.flatnonzero(~((previous < b) & (b < x)))
    if bad.size:
        i = bad[0]
        raise ConfigError(
            f"{bad.size} biases do not interleave the sorted projections, "
            f"first at i = {i}: x_(i-1) = {previous[i]:.9g}, b_i = {b[i]:.9g}, x_i = {x[i]:.9g}"
        )


def activation_matrix(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A_ij = max(x_i − b_j, 0): hidden unit j's activation on sample point i."""
    a = np.subtract.outer(x, b)
    return np.maximum(a, 0, out=a)


def construct(z: np.ndarray, y: np.ndarray, rng: np.random.Generator, gap_fraction: float = 0.5) -> Construction:
    """Theorem 1's network fitting ``y`` (n,) on ``z`` (n, d) or (n, ...) images, in float64."""
    z = np.ascontiguousarray(z, dtype=np.float64).reshape(len(z), -1)
    a, x = distinct_projections(z, rng)
    order = np.argsort(x)
    x = x[order]
    b = interleaved_biases(x, gap_fraction)
    check_interleaved(x, b)
    matrix = activation_matrix(x, b)
    w = scipy.linalg.solve_triangular(matrix, np.asarray(y, np.float64)[order], lower=True, check_finite=False)
    model = DepthTwoReLU(*(torch.from_numpy(v) for v in (a, b, w)))
    return Construction(model, x, b, matrix, gap_fraction)


def fit_error(model: nn.Module, z: np.ndarray, y: np.ndarray, dtype: str = "float64", batch_size: int = 1024) -> float:
    """max_i |c(z_i) − y_i| with a copy of the network in ``dtype`` (float32 or float64)."""
    model = copy.deepcopy(model).to(getattr(torch, dtype))
    with torch.no_grad():
        outputs = torch.cat([model(chunk) for chunk in torch.from_numpy(np.asarray(z)).split(batch_size)])
    return float(np.abs(outputs.double().numpy() - np.asarray(y, np.float64)).max())


def condition_number(matrix: np.ndarray) -> float:
    """LAPACK's estimate (trcon) of the 1-norm condition number of a lower-triangular matrix, in O(n²).

    It reads ``matrix.T`` (upper triangular, Fortran order: no copy) and uses
    cond_1(A) = cond_∞(Aᵀ).
    """
    (trcon,) = scipy.linalg.lapack.get_lapack_funcs(("trcon",), (matrix,))
    rcond, info = trcon(matrix.T, norm="I", uplo="U", diag="N")
    if info:
        raise ValueError(f"LAPACK trcon failed (info = {info})")
    return float(np.inf) if rcond == 0 else float(1 / rcond)


def summarize(
    construction: Construction, z: np.ndarray, y: np.ndarray, dtype: str = "float64", eigenvalues: bool = True
) -> dict:
    """The checks of Theorem 1 and Lemma 1 on a construction.

    ``max_abs_error`` is max_i |c(z_i) − y_i| through the network in ``dtype``;
    ``lambda_min`` is the smallest eigenvalue of A computed numerically (skipped,
    None, unless ``eigenvalues``), to compare with ``min_gap`` = min_i (x_i − b_i).
    """
    model, matrix = construction.model, construction.matrix
    lambda_min = float(np.linalg.eigvals(matrix).real.min()) if eigenvalues else None
    return {
        "n": len(construction.projections),
        "d": model.a.numel(),
        "n_weights": model.n_weights,
        "dtype": dtype,
        "gap_fraction": construction.gap_fraction,
        "max_abs_error": fit_error(model, z, y, dtype),
        "lambda_min": lambda_min,
        "min_gap": float((construction.projections - construction.biases).min()),
        "w_norm": float(scipy.linalg.norm(model.w.detach().numpy(), check_finite=False)),  # BLAS nrm2: no overflow
        "condition_number": condition_number(matrix),
    }


def sweep(
    ns: list[int],
    d: int = 20,
    gap_fractions: list[float] = (0.25, 0.5, 0.75),
    dtypes: list[str] = ("float32", "float64"),
    seed: int = 0,
) -> list[dict]:
    """Fit error, ‖w‖ and condition of the construction on Gaussian samples of each size in ``ns``.

    One row per (n, gap fraction, dtype of the network); for each n the sample and
    the direction a are the same across gap fractions.
    """
    rows = []
    for n in ns:
        rng = np.random.default_rng(seed)
        z, y = gaussian_sample(n, d, rng)
        direction_seed = rng.integers(2**32)
        for gap_fraction in gap_fractions:
            construction = construct(z, y, np.random.default_rng(direction_seed), gap_fraction)
            rows += [summarize(construction, z, y, dtype, eigenvalues=False) for dtype in dtypes]
            del construction  # free A (n² floats) before building the next one
    return rows
