"""The results bundles shipped in reproduction/: the documented status is generated from them, they hold
results tables only, and a sweep pointed at one adds just the runs it is missing."""

import shutil
from pathlib import Path

import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from harness.cli import create_app
from harness.readme import section
from harness.reports.status import (
    BUNDLE_FILE,
    SECTION_NAME,
    find_bundles,
    precision_section,
    render,
    table1_section,
)
from harness.reports.store import load_runs
from harness.results import INDEX_FOLDER, read_row, read_table, stored_schema_version
from harness.schema import schema_version
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
    files = [
        p
        for p in BUNDLES.rglob("*")
        if p.is_file() and not {"checkpoints", "claims", INDEX_FOLDER} & set(p.relative_to(BUNDLES).parts)
    ]
    strays = [
        p for p in files if p.name != BUNDLE_FILE and not (p.suffix == ".parquet" and p.parent.name in all_tables())
    ]
    assert not strays, "a bundle holds results tables and its bundle.toml, nothing else (no models)"
    assert sum(p.stat().st_size for p in files) < 40e6


def test_bundles_are_of_todays_schemas():
    """Analysts read a bundle beside new runs with one schema per table: `harness results --upgrade` on
    each bundle folder brings them to today's after a schema change."""
    tables = all_tables()
    files = [path for path in BUNDLES.rglob("*.parquet") if INDEX_FOLDER not in path.parts]
    behind = [
        path.relative_to(BUNDLES)
        for path in files
        if stored_schema_version(schema := pq.read_schema(path)) != schema_version(path.parent.name)
        or schema.names != tables[path.parent.name][1].names
    ]
    assert not behind, f"{len(behind)} files of older schemas, e.g. {behind[0]}: run `harness results --upgrade`"


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


def test_the_precision_section_sets_each_run_beside_its_fp32_twin():
    bundle = next(b for b in find_bundles(BUNDLES) if "precision" in b.sections)
    runs = load_runs(bundle.path, "cifar10")
    fp32 = {(r["model"], r["train_size"], r["seed"]): r for r in runs if r["precision"] == "fp32"}
    others = [r for r in runs if r["precision"] != "fp32"]
    rows = [line for line in precision_section(bundle) if line.startswith("| ") and " images, seed " in line]
    assert len(rows) == len(others) > 0
    for run in others:
        twin = fp32[run["model"], run["train_size"], run["seed"]]
        label = f"| {run['model']}, {run['train_size']:,} images, seed {run['seed']} | {run['precision']} |"
        (row,) = [row for row in rows if row.startswith(label)]
        assert f"{100 * twin['test_acc']:.2f} / {100 * run['test_acc']:.2f}" in row


# What a rerun of a shipped run must reproduce exactly on any machine: the data, the corruption and
# the split are integer draws from seeded generators, not float arithmetic.
DRAWN_COLUMNS = ("index", "label", "true_label", "corrupted", "redrawn", "trained")
# Training is bit-identical on one machine and library build only. Another CPU makes BLAS/oneDNN pick
# other kernels (AVX2 vs AVX-512), float sums differ in the last bits, and 60 epochs of SGD move a few
# examples. Measured on the bundle's removed run (1,500 train, 297 test examples): AVX-512 vs AVX2
# kernels and 1 vs 2 threads gave 1,301-1,304 training and 256-260 test examples right, against the
# shipped 1,301 and 257; the tolerances are several times that spread. A wrong configuration is caught
# exactly by the drawn columns and the stored settings.
TRAIN_ACC_TOLERANCE = 0.02  # 30 of 1,500 examples
TEST_ACC_TOLERANCE = 0.04  # 12 of 297 examples
# What training measured, and the versions and time of the run that made it; every other column of a
# stored run is a setting, equal wherever it is rerun.
MEASURED_COLUMNS = {
    "epochs",
    "steps",
    "train_acc",
    "test_acc",
    "train_loss",
    "test_loss",
    "fit_epoch",
    "fit_step",
    "best_test_acc",
    "train_top5",
    "test_top5",
    "best_test_top5",
    "stopped_early",
    "wall_seconds",
    "started_at",
    "harness_version",
    "torch_version",
    "corruption_scheme",
    "resumed_from_epoch",
}


def test_a_sweep_pointed_at_a_bundle_adds_only_the_missing_runs(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLES / "cpu-2core" / "memorization-digits", bundle)
    configs = load_sweep(REPOSITORY / "sweeps" / "memorization-cpu.toml").configs
    removed = configs[0].run_id
    shipped = read_row(bundle, "runs", removed)
    shipped_examples = read_table(bundle, "examples").filter(pc.field("run_id") == removed)
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
    settings = [name for name in shipped if name not in MEASURED_COLUMNS]
    assert {k: again[k] for k in settings} == {k: shipped[k] for k in settings}
    examples = read_table(bundle, "examples").filter(pc.field("run_id") == removed)
    assert examples.select(DRAWN_COLUMNS).equals(shipped_examples.select(DRAWN_COLUMNS))
    assert again["fit_epoch"] is None and again["epochs"] == again["max_epochs"]  # far from fitting (87 %)
    assert again["train_acc"] == pytest.approx(shipped["train_acc"], abs=TRAIN_ACC_TOLERANCE)
    assert again["test_acc"] == pytest.approx(shipped["test_acc"], abs=TEST_ACC_TOLERANCE)
    assert pl.read_parquet(f"{bundle}/runs/*.parquet").height == len(configs)  # shipped and new runs, one schema


def test_table1_status_names_as_not_run_only_rows_of_the_bundles_models(tmp_path):
    shutil.copytree(BUNDLES / "cpu-2core" / "full-scale-alexnet", tmp_path / "alexnet")
    weight_decay_row = "ed04f0c0660972e5"  # AlexNet, true labels, weight decay
    for table in ("runs", "epochs", "examples"):
        (tmp_path / "alexnet" / table / f"{weight_decay_row}.parquet").unlink()
    [bundle] = find_bundles(tmp_path)

    [note] = [line for line in table1_section(bundle) if line.startswith("Not run: ")]
    not_run = note.removeprefix("Not run: ").removesuffix(".").split("; ")
    assert not_run == ["alexnet true labels weight_decay"]  # no MLP or Inception row: those are other bundles'


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
    assert "unknown sections ['memorisation'] (known: table1, table2, fig1a" in result.output

    readme.write_text("no markers\n")
    result = invoke("schema", "--write", readme)
    assert result.exit_code == 2 and "<!-- schema:start -->" in result.output
