import csv
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import create_app
from harness.config import RunConfig
from harness.reports import status, table2
from harness.reports.store import load_runs
from harness.runner import execute
from harness.sweep import load_sweep

SMALL = {"dataset": "digits", "train_size": 60, "test_size": 30, "batch_size": 30}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A small digits results folder: MLP runs of every corruption and level, Inception ± BN runs."""
    folder = tmp_path_factory.mktemp("results")
    configs = [
        RunConfig(model="mlp_1x512", corruption=c, max_epochs=2, **SMALL)
        for c in ("none", "shuffled_pixels", "random_pixels", "gaussian")
    ]
    configs += [
        RunConfig(model=m, max_epochs=1, **{**SMALL, "train_size": 30}) for m in ("inception", "inception_nobn")
    ]
    configs += [
        RunConfig(
            model="mlp_1x512", corruption="random_labels", corrupt_prob=p, max_epochs=300, lr=0.1, lr_decay=1.0, **SMALL
        )
        for p in (0.0, 0.5, 1.0)
    ]
    for config in configs:
        execute(config, folder, device="cpu")
    return folder


def report(*args):
    return CliRunner().invoke(create_app(), ["report", *map(str, args)])


def test_table1_has_the_paper_column_and_names_missing_runs(results, tmp_path):
    outcome = report("table1", "--results-dir", results, "--out", tmp_path, "--dataset", "digits")
    assert outcome.exit_code == 0, outcome.output
    markdown = (tmp_path / "table1.md").read_text()
    assert (
        "paper test %" in markdown
        and "| Inception | " in markdown
        and "| MLP 1x512 | " in markdown
        and "85.75" in markdown
        and "9.78" in markdown
    )
    assert "train 30, test 30" in markdown and "train 60, test 30" in markdown
    assert (tmp_path / "table1.csv").read_text().startswith("model,params,random crop")
    assert "missing" in outcome.stderr and "sweeps/table1.toml" in outcome.stderr


def test_fig1_writes_three_pngs(results, tmp_path):
    outcome = report(
        "fig1", "--results-dir", results, "--out", tmp_path, "--dataset", "digits", "--plugin", "mlp_1x512"
    )
    assert outcome.exit_code == 0, outcome.output
    for name in ("fig1a.png", "fig1b.png", "fig1c.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG") and (tmp_path / name).stat().st_size > 10_000


def test_fig2_writes_a_png_and_the_bn_summary(results, tmp_path):
    outcome = report("fig2", "--results-dir", results, "--out", tmp_path, "--dataset", "digits")
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "fig2b.png").stat().st_size > 10_000
    assert "Inception w/o BatchNorm" in outcome.stdout and "82.00" in outcome.stdout


@pytest.mark.parametrize("name, sweep", [("fig1", "fig1a"), ("fig2", "fig2b")])
def test_empty_results_name_the_missing_runs(tmp_path, name, sweep):
    outcome = report(name, "--results-dir", tmp_path / "none", "--out", tmp_path / "out")
    assert outcome.exit_code == 1 and f"sweeps/{sweep}.toml" in outcome.stderr and "Traceback" not in outcome.output


def test_corruption_levels_come_from_one_training_size():
    from harness.reports.figure_data import level_runs
    from harness.reports.store import Missing

    def run(p, size, corruption="random_labels"):
        return {
            "model": "mlp_1x512",
            "corruption": corruption,
            "corrupt_prob": p,
            "train_size": size,
            "regularizers": [],
        }

    runs = [run(0.0, 256), run(0.5, 256), run(1.0, 256), run(0.5, 2000), run(1.0, 2000), run(1.0, 2000, "none")]
    found = level_runs(runs, "mlp_1x512", Missing("fig1bc"))
    assert sorted(found) == [0.0, 0.5, 1.0]
    assert {r["train_size"] for rs in found.values() for r in rs} == {2000}
    assert found[0.0][0]["corruption"] == "none"


def stored_run(results, corruption: str, corrupt_prob: float) -> dict:
    (run,) = [
        r
        for r in load_runs(results, "digits")
        if r["model"] == "mlp_1x512" and r["corruption"] == corruption and r["corrupt_prob"] == corrupt_prob
    ]
    return run


MEASURED = {
    "top-1 train %": "train_acc",
    "top-5 train %": "train_top5",
    "top-1 test %": "test_acc",
    "best top-5 test %": "best_test_top5",
}
"""Columns of table2.csv, with the runs column they average."""


def test_table2_sets_top1_and_top5_with_their_best_beside_the_papers(results, tmp_path):
    outcome = report(
        "table2", "--results-dir", results, "--out", tmp_path, "--plugin", "mlp_1x512", "--dataset", "digits"
    )
    assert outcome.exit_code == 0, outcome.output
    true, random = stored_run(results, "none", 1.0), stored_run(results, "random_labels", 1.0)
    with open(tmp_path / "table2.csv") as file:
        rows = list(csv.DictReader(file))
    assert [(r["labels"], r["aug"], r["dropout"], r["wd"], r["seeds"]) for r in (rows[3], rows[6])] == [
        ("true", "no", "no", "no", "1"),
        ("random", "no", "no", "no", "1"),
    ]
    for row, run in ((rows[3], true), (rows[6], random)):
        for column, stored in MEASURED.items():
            assert float(row[column]) == pytest.approx(100 * run[stored])
    assert random["train_acc"] == 1.0 and float(rows[6]["top-5 train %"]) == 100.0
    markdown = (tmp_path / "table2.md").read_text()
    measured = f"{100 * true['test_top5']:.2f} ({100 * true['best_test_top5']:.2f})"
    assert f"| {measured} | 80.38 (84.49) |" in markdown  # ours beside the paper's, best in parentheses
    assert "| 59.80 (63.16) |" in markdown and "| 95.20 |" in markdown and "| 0.56 |" in markdown
    assert "5 run(s) missing" in outcome.stderr and "sweeps/table2.toml" in outcome.stderr

    default = report("table2", "--results-dir", results, "--out", tmp_path / "imagenet")
    assert default.exit_code == 0 and "7 run(s) missing: inception_v3 true labels with aug+dropout+wd" in default.stderr
    assert "| true | no | no | no | – | 99.53 |" in (tmp_path / "imagenet" / "table2.md").read_text()


def test_table2_rows_match_runs_by_labels_and_kinds_of_regularizers():
    def run(corruption="none", p=1.0, regularizers=(), size=100):
        regularizers = list(regularizers)
        return dict(
            model="inception_v3", corruption=corruption, corrupt_prob=p, train_size=size, regularizers=regularizers
        )

    full = run(regularizers=("augment=0.5", "dropout=0.2", "weight_decay=4e-5"))
    cropped, augmented = run(regularizers=("random_crop",)), run(regularizers=("augment",), size=50)
    random, half = run("random_labels", regularizers=("weight_decay=1e-3",)), run("random_labels", 0.5)
    stopped = run(regularizers=("early_stopping",))
    runs = [full, cropped, augmented, random, half, stopped]
    found = [table2.paper_runs(runs, paper) for paper in table2.PAPER_TABLE2]
    assert found == [[full], [cropped], [], [], [], [random], []]  # the largest training size; p = 1 only
    assert table2.paper_runs(runs, table2.PAPER_TABLE2[0], plugin="resnet18") == []


def test_the_status_shows_table2_of_a_bundle(results, tmp_path):
    shutil.copytree(results, tmp_path / "reproduction" / "digits")
    (tmp_path / "reproduction" / "digits" / status.BUNDLE_FILE).write_text(
        'title = "digits"\nmachine = "CPU"\nmade_by = "pytest"\nsections = ["table2"]\n'
    )
    (bundle,) = status.find_bundles(tmp_path / "reproduction")
    heading = "**Table 2, inception_v3 on imagenet** (`harness report table2 --results-dir reproduction/digits`):"
    assert f"{heading}\n\nNothing stored yet." in status.render(tmp_path / "reproduction")
    lines = status.table2_section(bundle, plugin="mlp_1x512", dataset="digits")
    rows = [line for line in lines if line.startswith("| true ") or line.startswith("| random ")]
    assert [row.split(" | ")[:4] for row in rows] == [["| true", "no", "no", "no"], ["| random", "no", "no", "no"]]
    assert "| 99.53 |" in rows[0] and "Not run: mlp_1x512 true labels with aug+dropout+wd;" in lines[-1]


def test_the_table2_sweep_makes_one_run_per_row_of_the_paper():
    configs = load_sweep(Path(__file__).parent.parent / "sweeps" / "table2.toml").configs
    assert {(c.model, c.dataset) for c in configs} == {(table2.PLUGIN, table2.DATASET)}
    runs = [{**c.to_row(), "train_size": None} for c in configs]
    assert [len(table2.paper_runs(runs, paper)) for paper in table2.PAPER_TABLE2] == [1] * 7 == [1] * len(configs)
