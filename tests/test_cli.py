import json

import pytest
from typer.testing import CliRunner

from harness.cli import create_app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(create_app(), [str(a) for a in args])


def test_plugins_lists_every_kind_with_source():
    result = invoke("plugins", "--format", "json")
    assert result.exit_code == 0
    listing = json.loads(result.stdout)
    names = {kind: {e["name"] for e in entries} for kind, entries in listing.items()}
    assert {"mlp_1x512", "mlp_3x512", "alexnet", "inception"} <= names["models"]
    assert {"none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"} <= names["corruptions"]
    assert {"cifar10", "mnist", "digits"} <= names["datasets"]
    assert all("built-in" in e["source"] for e in listing["models"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--plugin", "nope"], "unknown model 'nope'; known: alexnet"),
        (["--plugin", "mlp_1x512", "--corruption", "bad"], "unknown corruption 'bad'; known: gaussian"),
        (["--plugin", "mlp_1x512", "--dataset", "bad"], "unknown dataset 'bad'; known: cifar10"),
        (["--plugin", "mlp_1x512", "--corrupt-prob", "1.5"], "--corrupt-prob must be in [0, 1]"),
        (
            ["--plugin", "mlp_1x512", "--dataset", "digits", "--train-size", "99999"],
            "--train-size 99999 is out of range",
        ),
        (["--plugin", "mlp_1x512", "--regularizer", "nope"], "unknown regularizer 'nope'"),
        (["--plugin", "inception", "--regularizer", "dropout=0.5"], "model inception does not support 'dropout'"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = invoke("run", *args, "--results-dir", tmp_path, "--device", "cpu")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_unwritable_results_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("run", "--plugin", "mlp_1x512", "--dataset", "digits", "--results-dir", blocker / "sub")
    assert result.exit_code == 2 and "not writable" in result.stderr


def test_missing_data_names_folder_and_layouts(tmp_path):
    result = invoke(
        "data", "export", "--dataset", "cifar10", "--out", tmp_path / "x.npz", "--data-root", tmp_path / "empty"
    )
    # Offline, torchvision's download fails; either way the error names the folder and both layouts.
    if result.exit_code == 0:
        pytest.skip("a network was reachable and CIFAR-10 downloaded")
    text = " ".join(result.stderr.split())
    assert result.exit_code == 2 and str(tmp_path / "empty") in text and "cifar10/train.npz" in text


def test_run_then_results_table_csv_json(tmp_path):
    run = [
        "run",
        "--plugin",
        "mlp_1x512",
        "--dataset",
        "digits",
        "--corruption",
        "random_labels",
        "--train-size",
        "100",
        "--test-size",
        "50",
        "--max-epochs",
        "2",
        "--results-dir",
        tmp_path,
        "--device",
        "cpu",
    ]
    result = invoke(*run)
    assert result.exit_code == 0, result.output
    assert "train acc" in result.stdout
    again = invoke(*run)
    assert "already completed" in again.stdout
    rows = json.loads(invoke("results", "--results-dir", tmp_path, "--format", "json").stdout)
    assert len(rows) == 1 and rows[0]["corruption"] == "random_labels" and rows[0]["epochs"] == 2
    csv_lines = invoke(
        "results", "--results-dir", tmp_path, "--format", "csv", "--plugin", "mlp_1x512"
    ).stdout.splitlines()
    assert csv_lines[0].startswith("run_id,status") and len(csv_lines) == 2
    assert (
        json.loads(invoke("results", "--results-dir", tmp_path, "--format", "json", "--corruption", "none").stdout)
        == []
    )
    assert "1 runs" in invoke("results", "--results-dir", tmp_path).stdout


def test_data_preview_and_export(tmp_path):
    import numpy as np

    png = tmp_path / "grid.png"
    result = invoke("data", "preview", "--dataset", "digits", "--corruption", "random_pixels", "--out", png)
    assert result.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "d.npz"
    result = invoke(
        "data", "export", "--dataset", "digits", "--corruption", "random_labels", "--seed", "1", "--out", out
    )
    assert result.exit_code == 0
    with np.load(out) as arrays:
        assert arrays["x_train"].shape == (1500, 8, 8, 1) and arrays["y_test"].shape == (297,)
        assert arrays["x_train"].max() <= 1.0


def tiny_run(results_dir):
    """``harness run`` of MLP 1x512 on 50 digits for one epoch."""
    return invoke(
        *("run", "--plugin", "mlp_1x512", "--dataset", "digits", "--train-size", "50", "--test-size", "20"),
        *("--max-epochs", "1", "--results-dir", results_dir, "--device", "cpu"),
    )


def test_results_lists_runs_that_failed_before_starting(tmp_path):
    from harness.config import RunConfig
    from harness.executors import record_failure

    record_failure(tmp_path, RunConfig(model="mlp_1x512", dataset="digits"), "DataError: gone")
    ok = tiny_run(tmp_path)
    assert ok.exit_code == 0, ok.output
    rows = json.loads(invoke("results", "--results-dir", tmp_path, "--format", "json").stdout)
    assert [r["status"] for r in rows] == ["failed", "completed"]


def test_unreadable_result_files_are_named_and_skipped(tmp_path):
    ok = tiny_run(tmp_path)
    assert ok.exit_code == 0, ok.output
    runs = tmp_path / "runs"
    good = next(runs.glob("*.parquet"))
    (runs / "truncated.parquet").write_bytes(good.read_bytes()[:100])
    (runs / "stray.parquet").write_text("not a table")
    result = invoke("results", "--results-dir", tmp_path, "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 1
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and all("not a valid Parquet table" in w for w in warnings)
    assert any("truncated.parquet" in w for w in warnings) and any("stray.parquet" in w for w in warnings)
    assert "Traceback" not in result.output


def all_commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from all_commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_help_texts_survive_rich_markup():
    """A help text with square brackets (`[grid]`, `[default: 20]`) must escape them, or rich
    takes them for markup and drops them from `--help`."""
    import typer.main
    from rich.text import Text

    group = typer.main.get_group(create_app())
    texts = [
        (path, param.help)
        for path, command in all_commands(group)
        for param in command.params
        if getattr(param, "help", None)
    ]
    texts += [(path, command.help) for path, command in all_commands(group) if command.help]
    assert len(texts) > 100
    lost = [(path, text) for path, text in texts if Text.from_markup(text).plain != text.replace("\\[", "[")]
    assert not lost
