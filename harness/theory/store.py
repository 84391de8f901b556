"""Parquet schemas of the theory tables, and run ids.

Tables (``RESULTS/<table>/<run_id>.parquet``): ``theory_expressivity`` and
``theory_min_norm`` (one row per run), ``theory_expressivity_sweep`` (one row
per setting of a sweep), ``theory_min_norm_curves`` (one row per recorded SGD step).
"""

from __future__ import annotations

import pyarrow as pa

from harness.results import config_id
from harness.schema import schema


def run_id(command: str, options: dict) -> str:
    """Hash of a command's options (those that determine its numbers)."""
    return config_id({"command": command, **options})


_RUN_ID = ("run_id", pa.string(), "hash of the command's options")
_SEED = ("seed", pa.int64(), "seed of every random draw")
_DATASET = ("dataset", pa.string(), "data set of the sample (null: Gaussian points)")
_N = ("n", pa.int64(), "sample size")
_D = ("d", pa.int64(), "input dimension")
_DTYPE = ("dtype", pa.string(), "precision the network was evaluated in (the construction runs in float64)")
_GAP_FRACTION = ("gap_fraction", pa.float64(), "δ in b_i = x_i − δ (x_i − x_{i−1})")
_MAX_ABS_ERROR = ("max_abs_error", pa.float64(), "max_i |c(z_i) − y_i| through the network")
_MIN_GAP = ("min_gap", pa.float64(), "min_i (x_i − b_i): by Lemma 1, A's smallest eigenvalue")
_W_NORM = ("w_norm", pa.float64(), "‖w‖₂ of the output weights")
_CONDITION = ("condition_number", pa.float64(), "1-norm condition number of A (LAPACK trcon estimate)")

EXPRESSIVITY = schema(
    _RUN_ID,
    _N,
    _D,
    ("n_weights", pa.int64(), "weights of the network: 2n + d"),
    _DTYPE,
    _GAP_FRACTION,
    ("labels", pa.string(), "random (uniform classes as reals) or dataset (the real labels)"),
    _DATASET,
    _SEED,
    _MAX_ABS_ERROR,
    ("lambda_min", pa.float64(), "smallest eigenvalue of A, computed numerically"),
    _MIN_GAP,
    _W_NORM,
    _CONDITION,
)

EXPRESSIVITY_SWEEP = schema(
    _RUN_ID,
    _N,
    _D,
    _DTYPE,
    _GAP_FRACTION,
    _SEED,
    _MAX_ABS_ERROR,
    _MIN_GAP,
    _W_NORM,
    _CONDITION,
)

MIN_NORM = schema(
    _RUN_ID,
    _N,
    _D,
    _DATASET,
    _SEED,
    ("steps", pa.int64(), "SGD steps, one example each"),
    ("lr", pa.float64(), "constant step size η"),
    ("w_min_norm", pa.float64(), "‖w_min‖₂ of the minimum-norm interpolant"),
    ("kernel_lambda_min", pa.float64(), "smallest eigenvalue of X Xᵀ"),
    ("predicted_plateau", pa.float64(), "‖P⊥w₀‖ / ‖w_min‖ for the random start"),
    ("rel_dist_zero_init", pa.float64(), "‖w_T − w_min‖ / ‖w_min‖ from w₀ = 0"),
    ("rel_dist_random_init", pa.float64(), "‖w_T − w_min‖ / ‖w_min‖ from the random w₀"),
    ("final_loss_zero_init", pa.float64(), "(1/n) ‖X w_T − y‖² from w₀ = 0"),
    ("final_loss_random_init", pa.float64(), "(1/n) ‖X w_T − y‖² from the random w₀"),
    ("plot", pa.string(), "path of the PNG plot (null: none)"),
)

MIN_NORM_CURVES = schema(
    _RUN_ID,
    ("init", pa.string(), "start of SGD: zero or random"),
    ("step", pa.int64(), "SGD step"),
    ("loss", pa.float64(), "(1/n) ‖X w_t − y‖²"),
    ("rel_dist", pa.float64(), "‖w_t − w_min‖ / ‖w_min‖"),
)
