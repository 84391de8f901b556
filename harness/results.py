"""Results store: one Parquet file per run and table, written atomically.

Layout: ``RESULTS/<table>/<run_id>.parquet`` (tables: ``runs``, ``epochs``,
``examples``, ``kernel_runs``, ...). Every file records its table's schema version; the files of
today's version share one schema, so ``read_parquet('RESULTS/runs/*.parquet')`` reads them all, and
``harness results --upgrade`` brings older files to it.
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
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
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
        with open(path, "rb") as file:  # one open file: a writer's rename meanwhile cannot mix two versions
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


def read_table(results_dir: Path, table: str) -> pa.Table | None:
    """All rows of ``table`` (schemas unified by name), or None when there are none.

    A file that is not a valid Parquet table (a truncated copy, a stray file) is skipped with
    an :class:`UnreadableResultWarning` naming it.
    """
    folder = Path(results_dir) / table
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    tables = [t for t in map(read_parquet, files) if t is not None]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


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
