import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from harness.cli import create_app
from harness.data import DataError
from harness.executors import ExecutorSettings
from harness.memorization import MemorizationConfig, MemorizationError, estimate, scores, split_half_spearman

NOISY_DIGITS = dict(
    model="mlp_1x512",
    dataset="digits",
    corruption="random_labels",
    corrupt_prob=0.3,
    train_size=150,
    test_size=20,
    subset_fraction=0.5,
)


def on_cpu(results_dir):
    return ExecutorSettings(results_dir=results_dir, device="cpu")


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
        MemorizationConfig(model="mlp_1x512", dataset="digits", num_models=1).run_configs()
    with pytest.raises(MemorizationError, match="subset-fraction"):
        MemorizationConfig(model="mlp_1x512", dataset="digits", subset_fraction=1.0).run_configs()


def test_estimate_stores_one_row_per_example_and_resumes(tmp_path):
    config = MemorizationConfig(**NOISY_DIGITS, num_models=4, max_epochs=3, batch_size=32, lr=0.05)
    first = estimate(config, on_cpu(tmp_path))
    rows = pq.read_table(first.path).to_pylist()
    assert len(rows) == 150 and [r["index"] for r in rows] == list(range(150))
    assert all(r["models_in"] + r["models_out"] == 4 for r in rows)
    assert sum(r["models_in"] for r in rows) == 4 * 75  # each model trains on half
    assert any(r["corrupted"] for r in rows) and all(r["true_label"] is not None for r in rows)
    done = []
    again = estimate(config, on_cpu(tmp_path), on_result=done.append)
    assert {r.status for r in done} == {"skipped"} and again.table.equals(first.table)
    # Three epochs are too few to memorize 30 % noisy labels: the estimate says so, and stores it.
    assert first.models_fitted == 0 and 0.3 < first.mean_train_acc < 1
    assert first.fit_warning == (
        f"4 of 4 models did not fit their training subsets (mean training accuracy {100 * first.mean_train_acc:.1f} %), "
        "so the scores say little: raise --max-epochs (now 3) or --lr (now 0.05)"
    )
    assert {(r["models_fitted"], r["mean_train_acc"], r["fit_warning"]) for r in rows} == {
        (0, first.mean_train_acc, first.fit_warning)
    }


def test_the_default_training_fits_the_subsets(tmp_path):
    config = MemorizationConfig(**NOISY_DIGITS, num_models=2)
    result = estimate(config, on_cpu(tmp_path))
    assert result.models_fitted == 2 and result.mean_train_acc == 1.0 and result.fit_warning is None
    assert pq.read_table(result.path).column("fit_warning").null_count == 150


def test_missing_data_fails_once_before_any_model_is_trained(tmp_path):
    started = []
    config = MemorizationConfig(model="mlp_1x512", dataset="imagenet", num_models=3)
    with pytest.raises(DataError, match="ImageNet not found"):
        settings = ExecutorSettings(results_dir=tmp_path / "results", data_root=tmp_path / "data", device="cpu")
        estimate(config, settings, on_result=started.append)
    assert not started and not (tmp_path / "results").exists()


def test_memorization_command(tmp_path):
    args = ["memorization", "--plugin", "mlp_1x512", "--dataset", "digits", "--train-size", "100", "--test-size", "20",
            "--num-models", "2", "--max-epochs", "1", "--device", "cpu", "--results-dir", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 0, result.output
    assert "100 examples, 2 models (0 fitted their subsets" in " ".join(result.stdout.split())
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert (
        len(warning) == 1 and "2 of 2 models did not fit" in warning[0] and "raise --max-epochs (now 1)" in warning[0]
    )
    bad = CliRunner().invoke(create_app(), [*args[:10], "1", *args[11:]])
    assert bad.exit_code == 2 and "--num-models must be at least 2" in bad.stderr


def test_missing_data_is_one_error_on_the_command_line(tmp_path):
    args = ["memorization", "--plugin", "mlp_1x512", "--dataset", "imagenet", "--num-models", "3", "--device", "cpu",
            "--data-root", str(tmp_path / "data"), "--results-dir", str(tmp_path / "results")]  # fmt: skip
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 2 and result.stderr.count("ImageNet not found") == 1, result.output
