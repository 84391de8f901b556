import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from harness.cli import create_app
from harness.memorization import MemorizationConfig, MemorizationError, estimate, scores, split_half_spearman


def test_scores_from_trained_and_correct():
    trained = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    correct = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 1], [1, 0, 0]], dtype=bool)
    result = scores(trained, correct)
    assert result["models_in"].tolist() == [2, 2, 0] and result["models_out"].tolist() == [2, 2, 4]
    assert result["score"][:2].tolist() == [0.5, 1.0] and np.isnan(result["score"][2])  # never trained on
    assert result["score_stderr"][0] == pytest.approx(np.sqrt(0 + 0.25 / 2))


def test_split_halves_agree_when_the_scores_are_real():
    rng = np.random.default_rng(0)
    memorized = rng.random(300) < 0.3
    trained = rng.random((40, 300)) < 0.7
    correct = np.where(memorized, trained, True) & (rng.random((40, 300)) < 0.95)
    assert split_half_spearman(trained, correct) > 0.5
    assert abs(split_half_spearman(trained, rng.random((40, 300)) < 0.5)) < 0.2


def test_bad_settings_are_refused():
    with pytest.raises(MemorizationError, match="at least 2"):
        MemorizationConfig("mlp_1x512", "digits", models=1).run_configs()
    with pytest.raises(MemorizationError, match="subset-fraction"):
        MemorizationConfig("mlp_1x512", "digits", subset_fraction=1.0).run_configs()


def test_estimate_stores_one_row_per_example_and_resumes(tmp_path):
    config = MemorizationConfig(
        "mlp_1x512",
        "digits",
        "random_labels",
        0.3,
        train_size=150,
        test_size=20,
        models=4,
        subset_fraction=0.5,
        epochs=3,
        batch_size=32,
        lr=0.05,
    )
    first = estimate(config, tmp_path, device="cpu")
    rows = pq.read_table(first.path).to_pylist()
    assert len(rows) == 150 and [r["index"] for r in rows] == list(range(150))
    assert all(r["models_in"] + r["models_out"] == 4 for r in rows)
    assert sum(r["models_in"] for r in rows) == 4 * 75  # each model trains on half
    assert any(r["corrupted"] for r in rows) and all(r["true_label"] is not None for r in rows)
    done = []
    again = estimate(config, tmp_path, device="cpu", on_result=done.append)
    assert {r.status for r in done} == {"skipped"} and again.table.equals(first.table)


def test_memorization_command(tmp_path):
    args = [
        "memorization",
        "--plugin",
        "mlp_1x512",
        "--dataset",
        "digits",
        "--train-size",
        "100",
        "--test-size",
        "20",
        "--models",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--device",
        "cpu",
        "--results-dir",
        str(tmp_path),
    ]
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 0, result.output
    assert "100 examples, 2 models" in " ".join(result.stdout.split())
    bad = CliRunner().invoke(create_app(), args[:-2] + ["--models", "1", "--results-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "at least 2" in bad.stderr
