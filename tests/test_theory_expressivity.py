"""Theorem 1 and Lemma 1, checked numerically on the construction."""

import numpy as np
import pytest
import torch

from harness.theory.expressivity import (
    activation_matrix,
    check_interleaved,
    construct,
    interleaved_biases,
    summarize,
    sweep,
)
from harness.theory.samples import gaussian_sample


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    z, y = gaussian_sample(1000, 20, rng)
    return z, y, construct(z, y, rng)


def test_network_has_2n_plus_d_weights(sample):
    z, y, construction = sample
    assert construction.model.n_weights == 2 * 1000 + 20
    assert [p.shape for p in construction.model.parameters()] == [(20,), (1000,), (1000,)]


def test_matrix_is_lower_triangular_with_positive_diagonal(sample):
    _, _, construction = sample
    matrix = construction.matrix
    assert np.all(np.triu(matrix, 1) == 0)
    assert np.all(np.diag(matrix) > 0)
    assert np.all(np.diff(construction.projections) > 0)


def test_smallest_eigenvalue_is_the_smallest_gap(sample):
    z, y, construction = sample
    eigenvalues = np.linalg.eigvals(construction.matrix)
    gaps = construction.projections - construction.biases
    np.testing.assert_allclose(np.sort(eigenvalues.real), np.sort(gaps), rtol=1e-12)
    assert np.abs(eigenvalues.imag).max() <= 1e-12 * np.abs(eigenvalues.real).max()
    summary = summarize(construction, z, y)
    assert summary["lambda_min"] == pytest.approx(summary["min_gap"], rel=1e-12)
    assert summary["min_gap"] > 0


def test_network_fits_the_sample_in_float64(sample):
    z, y, construction = sample
    outputs = construction.model(torch.from_numpy(z)).detach().numpy()
    assert np.abs(outputs - y).max() < 1e-4
    summary = summarize(construction, z, y)
    assert summary["max_abs_error"] < 1e-4
    assert summary["n_weights"] == 2020 and summary["w_norm"] > 0 and summary["condition_number"] > 1


def test_network_takes_images_flattened():
    rng = np.random.default_rng(1)
    images = rng.random((30, 4, 4, 3))
    labels = rng.integers(10, size=30).astype(np.float64)
    model = construct(images, labels, rng).model
    assert model.n_weights == 2 * 30 + 48
    outputs = model(torch.from_numpy(images)).detach().numpy()
    np.testing.assert_allclose(outputs, labels, atol=1e-6)


def test_biases_interleave_the_projections():
    x = np.array([-1.0, 0.0, 0.5, 2.0])
    b = interleaved_biases(x, 0.5)
    np.testing.assert_allclose(b, [-1.5, -0.5, 0.25, 1.25])
    check_interleaved(x, b)
    with pytest.raises(ValueError):
        interleaved_biases(x, 1.0)


@pytest.mark.parametrize("wrong", ["all below", "above each point"])
def test_biases_that_do_not_interleave_give_a_singular_matrix(wrong):
    x = np.sort(np.random.default_rng(2).standard_normal(50))
    b = x.min() - 1 - np.arange(50.0) if wrong == "all below" else x + 1e-3
    with pytest.raises(ValueError, match="do not interleave"):
        check_interleaved(x, b)
    matrix = activation_matrix(x, b)
    assert np.linalg.matrix_rank(matrix) < 50


def test_repeated_points_cannot_be_separated():
    z = np.ones((5, 3))
    with pytest.raises(ValueError, match="repeats a point"):
        construct(z, np.arange(5.0), np.random.default_rng(0))


def test_sweep_shows_float32_limit_and_blow_up_below_midpoints():
    rows = sweep([100], d=20, gap_fractions=[0.25, 0.5], dtypes=["float32", "float64"])
    by = {(r["gap_fraction"], r["dtype"]): r for r in rows}
    assert len(rows) == 4
    assert by[0.5, "float64"]["max_abs_error"] < 1e-6
    assert by[0.5, "float32"]["max_abs_error"] > 1e3 * by[0.5, "float64"]["max_abs_error"]
    # δ < 1/2: slopes grow like ((1 − δ)/δ)^n = 3^n while λ_min only halves.
    assert by[0.25, "float64"]["w_norm"] > 1e20 * by[0.5, "float64"]["w_norm"]
    assert by[0.25, "float64"]["min_gap"] == pytest.approx(by[0.5, "float64"]["min_gap"] / 2)
