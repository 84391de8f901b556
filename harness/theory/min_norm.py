"""Section 5: SGD on underdetermined least squares converges to the minimum-norm interpolant.

For X (n, d) of rank n < d every labelling y has infinitely many interpolants
(X w = y). Plain SGD on the square loss ½(⟨w, x_i⟩ − y_i)², one example per step,

    w_{t+1} = w_t − η (⟨w_t, x_i⟩ − y_i) x_i,

only adds multiples of the x_i, so w_t − w_0 stays in the row space of X.
From w_0 = 0 it converges to the one interpolant in the row space,
w_min = Xᵀα with X Xᵀ α = y (Eq. 3, the kernel trick), which is X⁺y, the
minimum-norm solution. From a random w_0 it converges to w_min + P⊥w_0, where
P⊥ projects onto the null space of X: the relative distance to w_min plateaus
at ‖P⊥w_0‖ / ‖w_min‖.

Step size: constant, by default η = 1 / (2 max_i ‖x_i‖²). With η ‖x_i‖² ≤ 1 a
step never overshoots its example (it scales that residual by 1 − η ‖x_i‖²).
The system is consistent, so every stochastic gradient vanishes at an
interpolant and a constant step converges without decay.
Examples are visited in a fresh random order each epoch, the same order for both starts.
The training loss is the mean squared residual (1/n) ‖X w − y‖².

Speed: in expectation a step shrinks the error along the kernel's weakest
direction by about η λ_min(X Xᵀ) / n, so data with a small λ_min (raw image
pixels, which are strongly correlated) need many more steps than Gaussian data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.linalg


def kernel_matrix(x: np.ndarray) -> np.ndarray:
    """X Xᵀ, as a general matrix product.

    NumPy sends ``x @ x.T`` to BLAS ``syrk``, which crashes (segmentation fault) in the OpenBLAS
    bundled with NumPy and SciPy when it picks its SkylakeX kernels (AVX-512 CPUs) for float64 X of
    about 16,000 rows or more; ``gemm`` on a copy of Xᵀ does not, at twice the flops.
    """
    return x @ np.ascontiguousarray(x.T)


def kernel_solve(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """α with X Xᵀ α = v (Eq. 3)."""
    return scipy.linalg.solve(kernel_matrix(x), v, assume_a="pos")


def min_norm_solution(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """w_min = Xᵀ (X Xᵀ)⁻¹ y = X⁺y, the minimum-ℓ2-norm interpolant."""
    return x.T @ kernel_solve(x, y)


def null_space_component(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """P⊥w = w − Xᵀ (X Xᵀ)⁻¹ X w, the part of ``w`` orthogonal to the row space of X."""
    return w - x.T @ kernel_solve(x, x @ w)


def default_lr(x: np.ndarray) -> float:
    """η = 1 / (2 max_i ‖x_i‖²)."""
    return 0.5 / float(np.max(np.einsum("ij,ij->i", x, x)))


def sgd(
    x: np.ndarray, y: np.ndarray, w0: np.ndarray, lr: float, order: np.ndarray, record_every: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run SGD visiting the examples in ``order``; return the recorded steps and iterates.

    Records w_0 and every ``record_every``-th iterate, and always the last one.
    """
    w = w0.astype(np.float64)
    steps, iterates = [0], [w.copy()]
    for t, i in enumerate(order, start=1):
        w -= lr * (x[i] @ w - y[i]) * x[i]
        if t % record_every == 0 or t == len(order):
            steps.append(t)
            iterates.append(w.copy())
    return np.array(steps), np.array(iterates)


def run(
    x: np.ndarray, y: np.ndarray, steps: int, rng: np.random.Generator, lr: float | None = None, records: int = 200
) -> tuple[dict, list[dict]]:
    """SGD from w_0 = 0 and from a random w_0 (Gaussian direction, ‖w_0‖ = ‖w_min‖).

    Returns the summary (end values and the predicted plateau) and the curves,
    one row per recorded step and start: ``init``, ``step``, ``loss``, ``rel_dist``.
    """
    n, d = x.shape
    lr = default_lr(x) if lr is None else lr
    w_min = min_norm_solution(x, y)
    w_min_norm = float(np.linalg.norm(w_min))
    w_random = rng.standard_normal(d)
    w_random *= w_min_norm / np.linalg.norm(w_random)
    order = np.concatenate([rng.permutation(n) for _ in range(-(-steps // n))])[:steps]

    summary = {
        "n": n,
        "d": d,
        "steps": steps,
        "lr": lr,
        "w_min_norm": w_min_norm,
        "kernel_lambda_min": float(scipy.linalg.eigvalsh(kernel_matrix(x), subset_by_index=(0, 0))[0]),
        "predicted_plateau": float(np.linalg.norm(null_space_component(x, w_random))) / w_min_norm,
    }
    curves = []
    for init, w0 in (("zero", np.zeros(d)), ("random", w_random)):
        recorded, iterates = sgd(x, y, w0, lr, order, record_every=max(1, steps // records))
        losses = np.mean((iterates @ x.T - y) ** 2, axis=1)
        rel_dists = np.linalg.norm(iterates - w_min, axis=1) / w_min_norm
        curves += [
            {"init": init, "step": int(s), "loss": float(loss), "rel_dist": float(r)}
            for s, loss, r in zip(recorded, losses, rel_dists)
        ]
        summary[f"rel_dist_{init}_init"] = float(rel_dists[-1])
        summary[f"final_loss_{init}_init"] = float(losses[-1])
    return summary, curves


def plot(summary: dict, curves: list[dict], path: Path, title: str) -> Path:
    """Distance to w_min and training loss against the step, both starts, log-scale y; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    fig, (dist_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for init, color in (("zero", "tab:blue"), ("random", "tab:orange")):
        rows = [r for r in curves if r["init"] == init]
        steps = [r["step"] for r in rows]
        label = "w₀ = 0" if init == "zero" else "random w₀"
        dist_ax.plot(steps, [r["rel_dist"] for r in rows], color=color, label=label)
        loss_ax.plot(steps, [r["loss"] for r in rows], color=color, label=label)
    plateau = summary["predicted_plateau"]
    dist_ax.axhline(plateau, color="black", linestyle="--", label="predicted ‖P⊥w₀‖ / ‖w_min‖")
    dist_ax.set(yscale="log", xlabel="SGD step", ylabel="‖w_t − w_min‖ / ‖w_min‖")
    dist_ax.set_title("Distance to the minimum-norm solution")
    loss_ax.set(yscale="log", xlabel="SGD step", ylabel="(1/n) ‖X w_t − y‖²", title="Training loss")
    for ax in (dist_ax, loss_ax):
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
