"""The results bundles shipped in reproduction/: the documented status is generated from them, they hold
results tables only, and a sweep pointed at one adds just the runs it is missing."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import create_app
from harness.readme import section
from harness.reports.status import BUNDLE_FILE, SECTION_NAME, find_bundles, render
from harness.results import read_row, read_table
from harness.sweep import load_sweep
from harness.tables import all_tables

REPOSITORY = Path(__file__).parent.parent
BUNDLES = REPOSITORY / "reproduction"


def test_documented_status_is_generated_from_the_bundles():
    page = (REPOSITORY / "docs" / "reproduction.md").read_text()
    assert section(page, SECTION_NAME) == render(BUNDLES), (
        "docs/reproduction.md disagrees with reproduction/: rewrite it with `harness docs`"
    )


def test_bundles_hold_results_tables_only():
    files = [p for p in BUNDLES.rglob("*") if p.is_file() and "checkpoints" not in p.relative_to(BUNDLES).parts]
    strays = [
        p for p in files if p.name != BUNDLE_FILE and not (p.suffix == ".parquet" and p.parent.name in all_tables())
    ]
    assert not strays, "a bundle holds results tables and its bundle.toml, nothing else (no models)"
    assert sum(p.stat().st_size for p in files) < 40e6


@pytest.mark.parametrize("bundle", find_bundles(BUNDLES), ids=lambda b: b.name)
def test_bundles_hold_completed_runs_only(bundle):
    """An interrupted run's rows would be redone from scratch from a clone (checkpoints are not shipped)."""
    for table in ("runs", "kernel_runs"):
        stored = read_table(bundle.path, table)
        assert stored is None or set(stored.column("status").to_pylist()) == {"completed"}


@pytest.mark.parametrize("bundle", find_bundles(BUNDLES), ids=lambda b: b.name)
def test_stored_runs_are_runs_of_the_bundles_sweeps(bundle):
    """Run ids are hashes of the configuration: if those of the specs drift from the stored ones, a sweep
    pointed at the bundle would redo all of it."""
    if not bundle.sweeps:
        pytest.skip("no sweeps: its runs come from other commands")
    wanted = {config.run_id for spec in bundle.sweeps for config in load_sweep(REPOSITORY / spec).configs}
    runs = read_table(bundle.path, "runs")
    stored = set(runs.column("run_id").to_pylist()) if runs is not None else set()
    assert stored <= wanted


@pytest.fixture
def one_thread():
    """The bundles' CPU runs used one torch thread each (two runs at once on two cores); the same
    seed gives the same numbers with the same thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_sweep_pointed_at_a_bundle_adds_only_the_missing_runs(tmp_path, one_thread):
    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLES / "cpu-2core" / "memorization-digits", bundle)
    configs = load_sweep(REPOSITORY / "sweeps" / "memorization-cpu.toml").configs
    removed = configs[0].run_id
    shipped = read_row(bundle, "runs", removed)
    for table in ("runs", "epochs", "examples"):
        (bundle / table / f"{removed}.parquet").unlink()
    kept = {c.run_id: (bundle / "runs" / f"{c.run_id}.parquet").stat().st_mtime_ns for c in configs[1:]}

    result = CliRunner().invoke(
        create_app(),
        [
            "sweep",
            str(REPOSITORY / "sweeps" / "memorization-cpu.toml"),
            "--results-dir",
            str(bundle),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 completed, 3 skipped" in result.output
    assert {c.run_id: (bundle / "runs" / f"{c.run_id}.parquet").stat().st_mtime_ns for c in configs[1:]} == kept
    again = read_row(bundle, "runs", removed)
    assert again["status"] == "completed"
    assert (again["epochs"], again["train_acc"], again["test_acc"]) == (
        shipped["epochs"],
        shipped["train_acc"],
        shipped["test_acc"],
    )


def invoke(*args):
    return CliRunner().invoke(create_app(), [str(a) for a in args])


def test_report_status_writes_between_the_markers_and_names_what_is_wrong(tmp_path):
    bundles = tmp_path / "reproduction"
    shutil.copytree(BUNDLES / "cpu-2core" / "memorization-digits", bundles / "laptop")
    shutil.copytree(REPOSITORY / "sweeps", tmp_path / "sweeps")  # a bundle's sweeps are named from the repository
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- reproduction-status:start -->\nold\n<!-- reproduction-status:end -->\n\nend\n")

    assert invoke("report", "status", "--bundles", bundles, "--write", readme).exit_code == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\n<!-- reproduction-status:start -->\n#### `reproduction/laptop`: ")
    assert "old" not in text and text.endswith("<!-- reproduction-status:end -->\n\nend\n")
    assert section(text, SECTION_NAME) == render(bundles)
    assert "rewritten" not in invoke("report", "status", "--bundles", bundles, "--write", readme).output

    (bundles / "laptop" / BUNDLE_FILE).write_text(
        (bundles / "laptop" / BUNDLE_FILE).read_text().replace('"memorization"]', '"memorisation"]')
    )
    result = invoke("report", "status", "--bundles", bundles)
    assert result.exit_code == 2
    assert "unknown sections ['memorisation'] (known: table1, fig1a" in result.output

    readme.write_text("no markers\n")
    result = invoke("schema", "--write", readme)
    assert result.exit_code == 2 and "<!-- schema:start -->" in result.output
