"""Section 5: SGD from zero finds the minimum-norm interpolant; from a random start it does not."""

import subprocess
import sys

import numpy as np
import pytest

from harness.theory import min_norm
from harness.theory.samples import gaussian_sample


@pytest.fixture(scope="module")
def data():
    return gaussian_sample(40, 400, np.random.default_rng(0))


@pytest.fixture(scope="module")
def result(data):
    x, y = data
    return min_norm.run(x, y, steps=4000, rng=np.random.default_rng(1))


def test_kernel_solution_is_the_pseudo_inverse_solution(data):
    x, y = data
    w_min = min_norm.min_norm_solution(x, y)
    np.testing.assert_allclose(w_min, np.linalg.pinv(x) @ y, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(x @ w_min, y, atol=1e-10)
    other = w_min + min_norm.null_space_component(x, np.random.default_rng(2).standard_normal(400))
    np.testing.assert_allclose(x @ other, y, atol=1e-10)
    assert np.linalg.norm(other) > np.linalg.norm(w_min)


def test_sgd_from_zero_reaches_the_minimum_norm_solution(result):
    summary, _ = result
    assert summary["rel_dist_zero_init"] < 1e-3
    assert summary["final_loss_zero_init"] < 1e-8


def test_sgd_from_random_start_plateaus_at_its_null_space_part(result):
    summary, _ = result
    plateau = summary["predicted_plateau"]
    assert plateau > 0.5
    assert summary["rel_dist_random_init"] == pytest.approx(plateau, rel=0.03)
    assert summary["final_loss_random_init"] < 1e-8


def test_curves_start_at_the_initial_point(data, result):
    x, y = data
    summary, curves = result
    zero = [r for r in curves if r["init"] == "zero"]
    # From zero the distance to w_min is ||w_min|| / ||w_min||: 1 up to rounding of the two norms.
    assert zero[0] == {"init": "zero", "step": 0, "loss": pytest.approx(np.mean(y**2)), "rel_dist": pytest.approx(1.0)}
    assert zero[-1]["step"] == summary["steps"]
    assert len(curves) == 2 * len(zero)


def test_plot_is_written(result, tmp_path):
    summary, curves = result
    path = min_norm.plot(summary, curves, tmp_path / "sub" / "curves.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_kernel_matrix_of_many_rows_does_not_crash_the_blas():
    """NumPy's ``x @ x.T`` (BLAS syrk) segfaults for float64 x of 16,000 x 784 with OpenBLAS's SkylakeX
    kernels; ``kernel_matrix`` takes the general product. Run in a child so that a crash fails the test."""
    code = (
        "import numpy as np; from harness.theory.min_norm import kernel_matrix; "
        "x = np.random.default_rng(0).random((16000, 784)); g = kernel_matrix(x); "
        "assert g.shape == (16000, 16000) and np.isclose(g[5, 5], x[5] @ x[5])"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
