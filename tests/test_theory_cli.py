"""The ``theory`` commands: JSON output, Parquet tables, plots."""

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from harness.cli.theory import theory_app
from harness.results import read_row, read_table
from harness.theory import store

runner = CliRunner()


def invoke_json(*args: str) -> dict:
    result = runner.invoke(theory_app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_expressivity_json_and_table(tmp_path):
    out = invoke_json("expressivity", "--n", "200", "--d", "10", "--results-dir", str(tmp_path))
    keys = ("n", "d", "n_weights", "max_abs_error", "lambda_min", "min_gap", "w_norm", "condition_number", "dtype")
    assert set(keys) | {"dataset"} <= set(out)
    assert (out["n"], out["d"], out["n_weights"], out["dtype"], out["dataset"]) == (200, 10, 410, "float64", None)
    assert out["max_abs_error"] < 1e-6
    assert out["lambda_min"] == pytest.approx(out["min_gap"], rel=1e-12)  # eigvals vs a direct difference
    row = read_row(tmp_path, "theory_expressivity", out["run_id"])
    assert row == out
    schema = pq.read_schema(tmp_path / "theory_expressivity" / f"{out['run_id']}.parquet")
    assert all(field.metadata[b"description"] for field in schema)


def test_expressivity_float32_network_is_less_accurate(tmp_path):
    args = ("expressivity", "--n", "300", "--d", "10", "--results-dir", str(tmp_path))
    float64, float32 = (invoke_json(*args, "--dtype", dtype) for dtype in ("float64", "float32"))
    assert float32["run_id"] != float64["run_id"]
    assert float32["w_norm"] == float64["w_norm"]
    assert float32["max_abs_error"] > 100 * float64["max_abs_error"]
    assert len(read_table(tmp_path, "theory_expressivity")) == 2


def test_expressivity_prints_a_summary(tmp_path):
    result = runner.invoke(theory_app, ["expressivity", "--n", "50", "--d", "5", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Theorem 1" in result.stdout and "n_weights" in result.stdout and "stored" in result.stdout


def test_expressivity_rejects_dataset_labels_without_a_dataset(tmp_path):
    result = runner.invoke(theory_app, ["expressivity", "--labels", "dataset", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--labels dataset needs --dataset" in result.output


@pytest.mark.data
def test_expressivity_on_images(tmp_path, cifar_root):
    args = ("--n", "100", "--dataset", "cifar10", "--data-root", str(cifar_root), "--results-dir", str(tmp_path))
    out = invoke_json("expressivity", *args, "--labels", "dataset")
    assert (out["d"], out["n_weights"], out["dataset"]) == (3072, 2 * 100 + 3072, "cifar10")
    assert out["max_abs_error"] < 1e-6


def test_expressivity_sweep(tmp_path):
    args = ("--n", "50", "--n", "80", "--gap-fraction", "0.5", "--results-dir", str(tmp_path))
    out = invoke_json("expressivity-sweep", *args)
    settings = [(r["n"], r["dtype"]) for r in out["rows"]]
    assert settings == [(50, "float32"), (50, "float64"), (80, "float32"), (80, "float64")]
    assert len(read_table(tmp_path, "theory_expressivity_sweep")) == 4


def test_min_norm_json_tables_and_plot(tmp_path):
    plot = tmp_path / "plots" / "min_norm.png"
    args = ("--n", "20", "--d", "200", "--steps", "3000", "--out", str(plot), "--results-dir", str(tmp_path))
    out = invoke_json("min-norm", *args)
    for key in ("rel_dist_zero_init", "rel_dist_random_init", "final_loss_zero_init", "final_loss_random_init"):
        assert key in out
    assert (out["n"], out["d"], out["steps"]) == (20, 200, 3000)
    assert out["rel_dist_zero_init"] < 1e-3
    assert abs(out["rel_dist_random_init"] / out["predicted_plateau"] - 1) < 0.03
    assert read_row(tmp_path, "theory_min_norm", out["run_id"]) == out
    curves = read_table(tmp_path, "theory_min_norm_curves").to_pylist()
    assert {r["init"] for r in curves} == {"zero", "random"}
    assert {r["run_id"] for r in curves} == {out["run_id"]}
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_sweep_rejects_gap_fractions_outside_0_1(tmp_path):
    result = runner.invoke(theory_app, ["expressivity-sweep", "--gap-fraction", "1", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "(0, 1)" in result.output


def test_min_norm_needs_more_dimensions_than_examples(tmp_path):
    result = runner.invoke(theory_app, ["min-norm", "--n", "30", "--d", "30", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not underdetermined" in result.output


def test_run_id_depends_on_the_options_only():
    assert store.run_id("x", {"a": 1, "b": 2}) == store.run_id("x", {"b": 2, "a": 1})
    assert store.run_id("x", {"a": 1}) != store.run_id("x", {"a": 2})
    assert store.run_id("x", {}) != store.run_id("y", {})
