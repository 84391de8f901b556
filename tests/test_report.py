import pytest
from typer.testing import CliRunner

from harness.cli import create_app
from harness.config import RunConfig
from harness.runner import execute

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
