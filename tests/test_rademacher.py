import json

import numpy as np
import pyarrow.parquet as pq
from typer.testing import CliRunner

from harness.cli import create_app
from harness.rademacher import signs


def rademacher(tmp_path, *args):
    result = CliRunner().invoke(
        create_app(),
        [
            "rademacher",
            "--dataset",
            "digits",
            "--lr-decay",
            "1",
            "--device",
            "cpu",
            "--results-dir",
            str(tmp_path),
            "--format",
            "json",
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_signs_are_balanced_and_differ_between_trials():
    a, b = signs(10_000, 0, 0), signs(10_000, 0, 1)
    assert set(np.unique(a)) == {-1, 1} and abs(a.mean()) < 0.05
    assert (a != b).mean() > 0.4 and np.array_equal(a, signs(10_000, 0, 0))


def test_wide_mlp_fits_any_signs_but_linear_model_on_more_points_than_dimensions_cannot(tmp_path):
    wide = rademacher(
        tmp_path, "--plugin", "mlp_1x512", "--train-size", "200", "--trials", "2", "--max-epochs", "300", "--lr", "0.1"
    )
    assert wide["estimate"] == 1.0 and wide["fitted_trials"] == 2 and wide["n"] == 200 and wide["trials"] == 2
    # 1,500 digits in 64 dimensions: a linear classifier can fit only a small part of random signs.
    linear = rademacher(
        tmp_path, "--plugin", "linear", "--train-size", "1500", "--trials", "2", "--max-epochs", "30", "--lr", "0.1"
    )
    assert 0.0 < linear["estimate"] < 0.4 and linear["fitted_trials"] == 0
    stored = pq.read_table(tmp_path / "rademacher").to_pylist()
    assert sorted(row["estimate"] for row in stored) == sorted([wide["estimate"], linear["estimate"]])
    assert pq.read_table(tmp_path / "rademacher_trials").num_rows == 4
