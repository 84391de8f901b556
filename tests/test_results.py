import duckdb
import pytest

from harness import results
from harness.results import INDEX_FOLDER, UnreadableResultWarning, completed_rows, read_table, write_table
from harness.schema import RUNS_SCHEMA


def store(results_dir, run_id, status="completed", **values):
    write_table(results_dir, "runs", run_id, [{"run_id": run_id, "status": status, **values}], RUNS_SCHEMA)


def file_reads(monkeypatch) -> list:
    """The files that ``read_table`` reads from now on (not its index)."""
    read = []
    original = results.read_parquet

    def counting(path):
        read.append(path.name)
        return original(path)

    monkeypatch.setattr(results, "read_parquet", counting)
    return read


def test_a_table_is_read_once_then_from_its_index_and_the_files_written_since(tmp_path, monkeypatch):
    for seed, run_id in enumerate(["c", "a", "b"]):
        store(tmp_path, run_id, seed=seed)
    read = file_reads(monkeypatch)
    assert read_table(tmp_path, "runs").column("run_id").to_pylist() == ["a", "b", "c"]
    assert sorted(read) == ["a.parquet", "b.parquet", "c.parquet"]
    assert (tmp_path / INDEX_FOLDER / "runs.parquet").is_file()

    read.clear()
    store(tmp_path, "d", seed=3)
    table = read_table(tmp_path, "runs")
    assert read == ["d.parquet"]
    assert table.column("run_id").to_pylist() == ["a", "b", "c", "d"]
    assert table.column("seed").to_pylist() == [1, 2, 0, 3]
    assert table.schema == RUNS_SCHEMA

    read.clear()
    assert read_table(tmp_path, "runs").equals(table) and read == []


def test_a_run_rewritten_or_removed_shows_as_it_is_now_and_once(tmp_path):
    store(tmp_path, "a", status="interrupted", epochs=3)
    store(tmp_path, "b")
    assert completed_rows(tmp_path, "runs", ["a", "b"]).keys() == {"b"}
    store(tmp_path, "a", epochs=10)
    (tmp_path / "runs" / "b.parquet").unlink()
    table = read_table(tmp_path, "runs")
    assert table.column("run_id").to_pylist() == ["a"] and table.column("epochs").to_pylist() == [10]
    assert completed_rows(tmp_path, "runs", ["a", "b"]).keys() == {"a"}
    glob = f"read_parquet('{tmp_path}/runs/*.parquet', union_by_name=true)"
    assert duckdb.sql(f"SELECT run_id, status FROM {glob}").fetchall() == [("a", "completed")]


def test_completed_rows_are_exactly_the_completed_runs_asked_for(tmp_path):
    assert completed_rows(tmp_path, "runs", ["a"]) == {}
    store(tmp_path, "a", train_acc=1.0)
    store(tmp_path, "b", status="interrupted")
    store(tmp_path, "c", status="failed", error="ValueError: no")
    store(tmp_path, "d")
    rows = completed_rows(tmp_path, "runs", ["a", "b", "c", "e"])
    assert rows.keys() == {"a"}
    assert rows["a"]["train_acc"] == 1.0 and rows["a"]["status"] == "completed"
    assert completed_rows(tmp_path, "runs", iter(["d", "a"])).keys() == {"a", "d"}


def test_an_unreadable_file_is_skipped_with_a_warning_at_every_read(tmp_path):
    store(tmp_path, "a")
    store(tmp_path, "b")
    good = (tmp_path / "runs" / "a.parquet").read_bytes()
    (tmp_path / "runs" / "truncated.parquet").write_bytes(good[:100])
    for _ in range(2):
        with pytest.warns(UnreadableResultWarning, match="truncated.parquet"):
            assert completed_rows(tmp_path, "runs", ["a", "b"]).keys() == {"a", "b"}


def test_a_damaged_index_is_rebuilt_and_a_read_only_folder_is_read_without_one(tmp_path, monkeypatch):
    store(tmp_path / "damaged", "a")
    index = tmp_path / "damaged" / INDEX_FOLDER / "runs.parquet"
    index.parent.mkdir()
    index.write_text("not a table")
    assert read_table(tmp_path / "damaged", "runs").column("run_id").to_pylist() == ["a"]
    assert results.read_index(index).column("index_file").to_pylist() == ["a.parquet"]

    store(tmp_path / "read-only", "b")

    def refuse(path, write):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(results, "write_atomically", refuse)
    assert read_table(tmp_path / "read-only", "runs").column("run_id").to_pylist() == ["b"]
    assert not (tmp_path / "read-only" / INDEX_FOLDER).exists()
