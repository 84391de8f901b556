"""The theory tables as the reports show them: what each holds, the command that makes it, the paper's
claim, and its columns."""

from __future__ import annotations

THEORY = (
    (
        "theory_expressivity",
        "Theorem 1: a depth-2 ReLU network with 2n + d weights fits any n points",
        "harness theory expressivity --n 1000 --d 20",
        "Paper: the network has 2n + d weights and fits every label exactly; by Lemma 1, λ_min(A) = min_i (x_i − b_i).",
        [
            ("n", "n"),
            ("d", "d"),
            ("data", lambda r: r["dataset"] or "Gaussian"),
            ("labels", "labels"),
            ("dtype", "dtype"),
            ("weights", "n_weights"),
            ("paper: 2n + d", lambda r: 2 * r["n"] + r["d"]),
            ("max |c(z) − y|", "max_abs_error"),
            ("λ_min(A)", "lambda_min"),
            ("min gap (Lemma 1)", "min_gap"),
            ("‖w‖", "w_norm"),
            ("cond(A)", "condition_number"),
        ],
    ),
    (
        "theory_expressivity_sweep",
        "Theorem 1's construction against n, in float32 and float64",
        "harness theory expressivity-sweep",
        "Paper: an exact fit for every n (in exact arithmetic); the table shows what finite precision makes of it.",
        [
            ("n", "n"),
            ("d", "d"),
            ("δ", "gap_fraction"),
            ("network", "dtype"),
            ("max |c(z) − y|", "max_abs_error"),
            ("min gap", "min_gap"),
            ("‖w‖", "w_norm"),
            ("cond(A)", "condition_number"),
        ],
    ),
    (
        "theory_min_norm",
        "SGD on underdetermined least squares reaches the minimum-norm solution from w₀ = 0",
        "harness theory min-norm",
        "Paper: started at w₀ = 0, SGD stays in the span of the data and converges to the minimum-norm interpolant "
        "(distance → 0); from a random w₀ it reaches another interpolant, at the predicted distance ‖P⊥w₀‖ / ‖w_min‖.",
        [
            ("n", "n"),
            ("d", "d"),
            ("data", lambda r: r["dataset"] or "Gaussian"),
            ("steps", "steps"),
            ("η", "lr"),
            ("‖w_min‖", "w_min_norm"),
            ("distance from w₀ = 0 (paper: → 0)", "rel_dist_zero_init"),
            ("distance from random w₀", "rel_dist_random_init"),
            ("predicted plateau", "predicted_plateau"),
            ("final loss, w₀ = 0", "final_loss_zero_init"),
        ],
    ),
    (
        "rademacher",
        "Empirical Rademacher complexity of the trained networks",
        "harness rademacher --plugin mlp_1x512 --train-size 500 --trials 5",
        "Paper: since the networks fit random labels perfectly, the empirical Rademacher complexity is about 1, "
        "the largest possible value, so the bound says nothing.",
        [
            ("model", "model"),
            ("data", "dataset"),
            ("n", "n"),
            ("trials", "trials"),
            ("fitted", "fitted_trials"),
            ("estimate (paper: ≈ 1)", "estimate"),
            ("std", "estimate_std"),
            ("device", "device"),
        ],
    ),
)
"""The theory tables: stored table, heading, command that makes a run, the paper's claim, columns."""


def column_values(row: dict, columns) -> list:
    """The values of ``row`` for ``columns`` (pairs of header and column name, or of header and function)."""
    return [column(row) if callable(column) else row[column] for _, column in columns]
