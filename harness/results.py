"""Results store: one Parquet file per run and table, written atomically.

Layout: ``RESULTS/<table>/<run_id>.parquet`` (tables: ``runs``, ``epochs``,
``examples``, ``kernel_runs``, ...). Every file records its table's schema version; the files of
today's version share one schema, so ``read_parquet('RESULTS/runs/*.parquet')`` reads them all, and
``harness results --upgrade`` brings older files to it.

:func:`read_table` keeps a copy of each table it reads in ``RESULTS/.index/<table>.parquet``, so
that a table of thousands of files is read again from one file and the files written since
(:data:`INDEX_FOLDER`). Nothing else reads that copy, and deleting it loses nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.errors import HarnessError
from harness.schema import SCHEMA_HISTORY, SCHEMA_VERSION_KEY, schema_version


class ResultsDirError(HarnessError):
    """The results folder cannot be created or written."""


class UnreadableResultWarning(UserWarning):
    """A file in a results folder is not a valid Parquet table; it is skipped."""


class OlderSchemaWarning(UserWarning):
    """A results folder holds files of an older schema version: they are read as they are, and
    ``harness results --upgrade`` rewrites them to today's columns."""


folders_told_of_older_files: set[Path] = set()
"""Results folders whose :class:`OlderSchemaWarning` this process has given (once per folder)."""


def stored_schema_version(schema: pa.Schema) -> int | None:
    """The schema version that a file's schema records; None for a file written before versions were
    recorded."""
    version = (schema.metadata or {}).get(SCHEMA_VERSION_KEY.encode(), b"")
    return int(version) if version.isdigit() else None


def warn_of_older_file(path: Path, schema: pa.Schema) -> None:
    """Warn, once per results folder, when ``path`` (``RESULTS/<table>/<name>.parquet``) is of an older
    schema version than its table's."""
    table, results_dir = path.parent.name, path.parent.parent
    if table not in SCHEMA_HISTORY or results_dir.resolve() in folders_told_of_older_files:
        return
    version = stored_schema_version(schema)
    if version is None or version < schema_version(table):
        folders_told_of_older_files.add(results_dir.resolve())
        warnings.warn(
            f"{results_dir} holds results of an older schema (read as they are); "
            f"`harness results --upgrade --results-dir {results_dir}` rewrites them to today's columns",
            OlderSchemaWarning,
            stacklevel=3,
        )


def read_parquet(path: Path) -> pa.Table | None:
    """The table in ``path``; None when there is none, or (with a warning naming the file) when it is
    not valid Parquet. A table file of an older schema version is read as it is, with an
    :class:`OlderSchemaWarning` once per results folder."""
    path = Path(path)
    try:
        # One open file: a writer's rename meanwhile cannot mix two versions. Arrow's own file, not
        # Python's: reading through Python file objects can abort the interpreter at exit (apache/arrow#34314).
        with pa.OSFile(str(path)) as file:
            table = pq.read_table(file)
    except FileNotFoundError:
        return None
    except (pa.ArrowException, OSError) as error:
        warnings.warn(f"skipped {path}: not a valid Parquet table ({error})", UnreadableResultWarning, stacklevel=2)
        return None
    warn_of_older_file(path, table.schema)
    return table


def config_id(config: dict, length: int = 16) -> str:
    """A hash of a configuration's canonical JSON: the same configuration always gets the same id."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def check_writable(results_dir: Path) -> None:
    """Raise ResultsDirError unless files can be created in ``results_dir``."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=results_dir, prefix=".probe-"):
            pass
    except OSError as error:
        raise ResultsDirError(f"results folder {results_dir} is not writable: {error.strerror or error}") from None


@contextlib.contextmanager
def interrupts_deferred():
    """Within the block, Ctrl-C (SIGINT) and SIGTERM wait: one that arrives is delivered to its own
    handler when the block ends (main thread only, where Python handles signals; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    handled = [number for number in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(number) is not None]
    previous = {number: signal.signal(number, lambda number, frame: received.append(number)) for number in handled}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(received):
            signal.raise_signal(number)


def write_atomically(path: Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    A reader sees the old file or the new one, never a partial one. Ctrl-C and SIGTERM take effect
    once the file is in place, and a write that fails leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with interrupts_deferred():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def table_path(results_dir: Path, table: str, run_id: str) -> Path:
    return Path(results_dir) / table / f"{run_id}.parquet"


def write_table(results_dir: Path, table: str, run_id: str, rows: list[dict] | pa.Table, schema: pa.Schema) -> Path:
    """Write ``rows`` (dicts, or an Arrow table of ``schema``) as ``RESULTS/<table>/<run_id>.parquet``
    (temp file + rename), recording the table's schema version in the file's metadata.

    A reader never sees a partial file: either the old file or the new one.
    """
    data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    if table in SCHEMA_HISTORY:
        version = {SCHEMA_VERSION_KEY: str(schema_version(table))}
        data = data.replace_schema_metadata({**(data.schema.metadata or {}), **version})
    return write_atomically(table_path(results_dir, table, run_id), lambda tmp: pq.write_table(data, tmp))


INDEX_FOLDER = ".index"
"""The folder of a results folder where :func:`read_table` keeps each table's rows with the file each
came from and that file's signature (inode, size, modification time; a rewrite changes it): a cache,
outside every table's folder, that only :func:`read_table` reads."""

INDEX_COLUMNS = ("index_file", "index_signature")


def signatures(folder: Path) -> dict[str, str]:
    """The name of every Parquet file in ``folder`` and its signature (inode, size, modification time)."""
    found = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".parquet"):
                    with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                        stat = entry.stat()
                        found[entry.name] = f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    except (FileNotFoundError, NotADirectoryError):
        pass
    return found


def read_index(path: Path) -> pa.Table | None:
    """The index at ``path``; None when there is none or it cannot be read (it is then rebuilt)."""
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError):
        return None


def read_source(folder: Path, name: str, signature: str) -> pa.Table | None:
    """The table in ``folder / name`` with the index's columns (the file's name and ``signature``), or
    None (see :func:`read_parquet`)."""
    stored = read_parquet(folder / name)
    if stored is None:
        return None
    for column, value in zip(INDEX_COLUMNS, (name, signature)):
        stored = stored.append_column(column, pa.array([value] * stored.num_rows, pa.string()))
    return stored


def read_table(results_dir: Path, table: str) -> pa.Table | None:
    """All rows of a table of a results folder.

    Only the files written since the last call are read; the others come from the table's index
    (:data:`INDEX_FOLDER`), which is then brought up to date (unless the folder is read-only). A file
    that is not a valid Parquet table (a truncated copy, a stray file) is skipped with an
    :class:`UnreadableResultWarning` naming it.

    Parameters
    ----------
    results_dir : Path
        The results folder.
    table : str
        The table: ``runs``, ``kernel_runs``, ...

    Returns
    -------
    pyarrow.Table or None
        Every file's rows, in the order of the files' names, schemas unified by name; None when no
        file could be read.
    """
    folder = Path(results_dir) / table
    current = signatures(folder)
    index_path = Path(results_dir) / INDEX_FOLDER / f"{table}.parquet"
    index = read_index(index_path)
    unchanged = None
    if index is not None:
        now = pa.array([current.get(name) for name in index.column("index_file").to_pylist()], pa.string())
        unchanged = index.filter(pc.equal(index.column("index_signature"), now))
    indexed = set(unchanged.column("index_file").to_pylist()) if unchanged is not None else set()
    fresh = [read_source(folder, name, current[name]) for name in sorted(current.keys() - indexed)]
    fresh = [stored for stored in fresh if stored is not None]
    tables = ([unchanged] if unchanged is not None and unchanged.num_rows else []) + fresh
    if not tables:
        return None
    combined = pa.concat_tables(tables, promote_options="default").sort_by("index_file")
    if any(stored.num_rows for stored in fresh) or (index is not None and unchanged.num_rows < index.num_rows):
        with contextlib.suppress(OSError):  # a read-only folder is read without its index
            write_atomically(index_path, lambda tmp: pq.write_table(combined, tmp))
    return combined.drop_columns(list(INDEX_COLUMNS))


def read_row(results_dir: Path, table: str, run_id: str) -> dict | None:
    """The single row stored for ``run_id`` in ``table``, or None (also when its file is unreadable)."""
    path = table_path(results_dir, table, run_id)
    stored = read_parquet(path)
    rows = stored.to_pylist() if stored is not None else []
    return rows[0] if rows else None


def completed_row(results_dir: Path, table: str, run_id: str) -> dict | None:
    """The row stored for ``run_id`` in ``table`` when its status is ``completed``, else None."""
    row = read_row(results_dir, table, run_id)
    return row if row is not None and row["status"] == "completed" else None


def completed_rows(results_dir: Path, table: str, run_ids: Iterable[str]) -> dict[str, dict]:
    """The stored rows of those runs that completed: one read of the table, not one file per run.

    Parameters
    ----------
    results_dir : Path
        The results folder.
    table : str
        A table of one row per run, with ``run_id`` and ``status`` columns: ``runs``, ``kernel_runs``.
    run_ids : iterable of str
        The runs asked about.

    Returns
    -------
    dict of str to dict
        The row of each run of ``run_ids`` stored with the status ``completed``, by run id (read by
        :func:`read_table`: unreadable files are skipped with a warning).
    """
    stored = read_table(results_dir, table)
    if stored is None:
        return {}
    wanted = pc.and_(
        pc.is_in(stored.column("run_id"), pa.array(list(run_ids), pa.string())),
        pc.equal(stored.column("status"), "completed"),
    )
    return {row["run_id"]: row for row in stored.filter(wanted).to_pylist()}
