"""Schema versions of the results tables: every file records its version, older files still load (with one
warning per folder), `harness results --upgrade` brings them to today's columns, and DuckDB, pandas and
polars read a folder of mixed versions as the schema page says."""

import warnings
from datetime import UTC, datetime

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from harness.cli import create_app
from harness.results import OlderSchemaWarning, read_row, read_table, stored_schema_version, write_table
from harness.schema import EPOCHS_SCHEMA, RUNS_SCHEMA, SCHEMA_HISTORY, fp32_unless_on_cuda, schema_version
from harness.tables import all_tables
from harness.upgrade import Outcome, upgrade_results

SAMPLE_VALUES = {
    pa.string(): "text",
    pa.int64(): 3,
    pa.float64(): 0.5,
    pa.bool_(): True,
    pa.list_(pa.string()): ["weight_decay=0.0005"],
    pa.timestamp("us", tz="UTC"): datetime(2026, 12, 1, tzinfo=UTC),
}


def sample_row(schema: pa.Schema, run_id: str) -> dict:
    """A row of ``schema`` with a value of its type in every column."""
    return {**{field.name: SAMPLE_VALUES[field.type] for field in schema}, "run_id": run_id, "device": "cpu"}


def columns_of_version(table: str, version: int) -> list[str]:
    """The columns that files of ``table`` had at ``version``: today's, less those added after it."""
    later = {name for change in SCHEMA_HISTORY[table] if change.version > version for name in change.added}
    return [name for name in all_tables()[table][1].names if name not in later]


def write_older_file(results_dir, table: str, version: int, run_id: str, *, without: tuple[str, ...] = ()) -> None:
    """A file of ``table`` as the harness wrote it at ``version`` (less the columns ``without``, as on a
    development branch): its columns, no recorded version."""
    schema = all_tables()[table][1]
    names = [name for name in columns_of_version(table, version) if name not in without]
    older = pa.schema([schema.field(name) for name in names])
    row = {name: value for name, value in sample_row(schema, run_id).items() if name in older.names}
    (results_dir / table).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([row], schema=older), results_dir / table / f"{run_id}.parquet")


def invoke(*args):
    return CliRunner().invoke(create_app(), [str(a) for a in args])


def test_every_table_has_a_history_of_its_columns():
    tables = all_tables()
    assert SCHEMA_HISTORY.keys() == tables.keys()
    for table, changes in SCHEMA_HISTORY.items():
        assert [change.version for change in changes] == list(range(2, schema_version(table) + 1))
        added = [name for change in changes for name in change.added]
        assert len(added) == len(set(added)) and set(added) <= set(tables[table][1].names), table
    assert schema_version("runs") == 8 and len(columns_of_version("runs", 1)) == 32
    assert schema_version("epochs") == 2 and len(columns_of_version("epochs", 1)) == 11


def test_written_files_record_their_schema_version(tmp_path):
    path = write_table(tmp_path, "runs", "a", [sample_row(RUNS_SCHEMA, "a")], RUNS_SCHEMA)
    assert stored_schema_version(pq.read_schema(path)) == schema_version("runs")
    assert pq.read_metadata(path).metadata[b"harness.schema_version"] == str(schema_version("runs")).encode()


def test_a_folder_of_every_runs_version_reads_everywhere_and_upgrades_to_one_schema(tmp_path):
    versions = range(1, schema_version("runs"))
    for version in versions:
        write_older_file(tmp_path, "runs", version, f"v{version}")
    write_older_file(tmp_path, "runs", 3, "branch", without=("resumed_from_epoch",))  # as some shipped runs were
    today = write_table(tmp_path, "runs", "today", [sample_row(RUNS_SCHEMA, "today")], RUNS_SCHEMA)
    files = f"{tmp_path}/runs/*.parquet"
    older, rows = len(versions) + 1, len(versions) + 2

    mixed = duckdb.sql(f"SELECT * FROM read_parquet('{files}', union_by_name=true)")
    assert mixed.shape == (rows, len(RUNS_SCHEMA)) and set(mixed.columns) == set(RUNS_SCHEMA.names)
    mixed = pd.read_parquet(tmp_path / "runs", schema=pq.read_schema(today))
    assert mixed.shape == (rows, len(RUNS_SCHEMA))
    mixed = pl.read_parquet(files, schema=pl.read_parquet_schema(today), missing_columns="insert")
    assert mixed.shape == (rows, len(RUNS_SCHEMA))
    mixed = pl.concat([pl.read_parquet(path) for path in (tmp_path / "runs").glob("*.parquet")], how="diagonal_relaxed")
    assert mixed.shape == (rows, len(RUNS_SCHEMA))

    result = invoke("results", "--upgrade", "--results-dir", tmp_path, "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.count(",upgraded,") == older and result.stdout.count(",current,") == 1

    runs = pl.read_parquet(files)
    assert runs.columns == RUNS_SCHEMA.names and runs.height == rows
    assert duckdb.sql(f"SELECT * FROM read_parquet('{files}')").shape == (rows, len(RUNS_SCHEMA))
    assert pd.read_parquet(tmp_path / "runs").shape == (rows, len(RUNS_SCHEMA))
    first = runs.filter(pl.col("run_id") == "v1").row(0, named=True)
    assert first == sample_row(RUNS_SCHEMA, "v1") | {
        "resumed_from_epoch": 0,
        "subset_fraction": None,
        "subset_seed": None,
        "logger_errors": 0,
        "pack_size": 1,
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "model_library": None,
        "model_library_version": None,
        "corruption_scheme": 1,
        "train_top5": None,
        "test_top5": None,
        "best_test_top5": None,
        "world_size": 1,
        "sync_bn": False,
    }
    branch = runs.filter(pl.col("run_id") == "branch").row(0, named=True)
    assert (branch["resumed_from_epoch"], branch["subset_fraction"], branch["pack_size"]) == (0, 0.5, 1)

    written = {path: path.read_bytes() for path in (tmp_path / "runs").iterdir()}
    assert {file.outcome for file in upgrade_results(tmp_path)} == {Outcome.CURRENT}
    assert {path: path.read_bytes() for path in (tmp_path / "runs").iterdir()} == written


def test_epochs_of_before_top5_upgrade_with_null_top5_and_every_other_value_kept(tmp_path):
    write_older_file(tmp_path, "epochs", 1, "old")
    before = pq.read_table(tmp_path / "epochs" / "old.parquet").to_pylist()[0]
    assert "test_top5" not in before

    assert [file.outcome for file in upgrade_results(tmp_path)] == [Outcome.UPGRADED]
    upgraded = pq.read_table(tmp_path / "epochs" / "old.parquet")
    assert upgraded.column_names == EPOCHS_SCHEMA.names
    assert upgraded.to_pylist()[0] == before | {"train_top5": None, "test_top5": None, "holdout_top5": None}
    assert stored_schema_version(upgraded.schema) == 2


def test_older_files_load_with_one_warning_per_folder(tmp_path):
    for folder in ("one", "two"):
        write_older_file(tmp_path / folder, "runs", 1, "old")
        write_table(tmp_path / folder, "runs", "new", [sample_row(RUNS_SCHEMA, "new")], RUNS_SCHEMA)
    with pytest.warns(OlderSchemaWarning) as told:
        assert read_table(tmp_path / "one", "runs").num_rows == 2
        assert "pack_size" not in read_row(tmp_path / "one", "runs", "old")
        assert read_row(tmp_path / "two", "runs", "old")["model"] == "text"
    assert [str(warning.message) for warning in told] == [
        f"{tmp_path / folder} holds results of an older schema (read as they are); "
        f"`harness results --upgrade --results-dir {tmp_path / folder}` rewrites them to today's columns"
        for folder in ("one", "two")
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", OlderSchemaWarning)
        read_row(tmp_path / "two", "runs", "new")


def test_files_that_cannot_be_upgraded_are_left_untouched_with_the_reason(tmp_path):
    write_older_file(tmp_path, "kernel_runs", 1, "old")
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "truncated.parquet").write_bytes(b"PAR1")
    pq.write_table(pa.table({"run_id": ["x"], "colour": ["red"]}), folder / "foreign.parquet")
    pq.write_table(pa.table({"run_id": ["x"]}), folder / "partial.parquet")
    newer = pa.Table.from_pylist([sample_row(RUNS_SCHEMA, "newer")], schema=RUNS_SCHEMA)
    pq.write_table(newer.replace_schema_metadata({"harness.schema_version": "99"}), folder / "newer.parquet")
    untouched = {path: path.read_bytes() for path in folder.iterdir()}

    result = invoke("results", "--upgrade", "--results-dir", tmp_path)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "foreign.parquet untouched: columns ['colour'] are not in the runs table" in said
    assert "partial.parquet untouched: lacks columns ['status', " in said
    assert "newer.parquet untouched: schema version 99 is newer than this harness's (8)" in said
    assert "truncated.parquet untouched: not a valid Parquet table" in said
    assert {path: path.read_bytes() for path in folder.iterdir()} == untouched
    assert pq.read_table(tmp_path / "kernel_runs" / "old.parquet").column("feature_options").to_pylist() == [None]

    assert invoke("results", "--upgrade", "--plugin", "mlp_1x512", "--results-dir", tmp_path).exit_code == 2
    assert invoke("results", "--upgrade", "--results-dir", tmp_path / "missing").exit_code == 2


def test_the_precision_of_older_runs_on_cuda_is_not_known():
    rows = pa.table({"device": ["cpu", "cuda", "cuda:1", None, "mps"]})
    assert fp32_unless_on_cuda(rows).to_pylist() == ["fp32", None, None, None, "fp32"]
