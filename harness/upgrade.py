"""Bring a results folder's files of older schema versions to today's schemas (``harness results --upgrade``).

Each file of an older version is rewritten, atomically, with today's columns in today's order: the
columns it has are kept (cast to today's types), and those it lacks get the values that
:data:`harness.schema.SCHEMA_HISTORY` gives for older rows. A current file is left as it is, so an
upgrade can be run again; a file that cannot be read or brought to today's schema is left untouched
and reported with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import HarnessError
from harness.results import ResultsDirError, stored_schema_version, write_table
from harness.schema import schema_version, values_for_older_rows
from harness.tables import all_tables


class SchemaMismatchError(HarnessError):
    """A stored table cannot be brought to today's schema of its table."""


class Outcome(StrEnum):
    """What an upgrade did with one file."""

    UPGRADED = "upgraded"
    CURRENT = "current"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, kw_only=True)
class FileUpgrade:
    """What an upgrade did with one file of a results folder.

    Attributes
    ----------
    table : str
        The results table the file belongs to.
    path : Path
        The file.
    outcome : Outcome
        Rewritten to today's schema, already current, or left untouched because it could not be read
        or brought to today's schema.
    reason : str or None
        Why an unreadable file was left untouched; None otherwise.
    """

    table: str
    path: Path
    outcome: Outcome
    reason: str | None = None


def upgraded_table(stored: pa.Table, *, table: str, schema: pa.Schema) -> pa.Table | None:
    """``stored`` with ``schema``'s columns, in its order and types; None when it is current already.

    Parameters
    ----------
    stored : pyarrow.Table
        A file's table as read, with the schema metadata it was written with.
    table : str
        The results table it belongs to (its schema history gives the values of missing columns).
    schema : pyarrow.Schema
        Today's schema of ``table``.

    Raises
    ------
    SchemaMismatchError
        When ``stored`` is of a newer schema version, has a column that ``schema`` has not, lacks a
        column that every version of the table had, or holds a column that cannot be cast to today's
        type.
    """
    version, current = stored_schema_version(stored.schema), schema_version(table)
    if version is not None and version > current:
        raise SchemaMismatchError(f"schema version {version} is newer than this harness's ({current})")
    if version == current and stored.schema.names == schema.names:
        return None
    unknown = [name for name in stored.column_names if name not in schema.names]
    if unknown:
        raise SchemaMismatchError(f"columns {unknown} are not in the {table} table")
    fills = values_for_older_rows(table)
    lacking = [name for name in schema.names if name not in stored.column_names and name not in fills]
    if lacking:
        raise SchemaMismatchError(f"lacks columns {lacking}, which every version of the {table} table has")
    return pa.Table.from_arrays([table_column(stored, field, fills) for field in schema], schema=schema)


def table_column(stored: pa.Table, field: pa.Field, fills: dict) -> pa.ChunkedArray | pa.Array:
    """Today's column ``field`` of ``stored``: its own values cast to ``field``'s type, or, for a column it
    lacks, the value ``fills`` gives for older rows."""
    if field.name in stored.column_names:
        try:
            return stored.column(field.name).cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise SchemaMismatchError(f"column {field.name} cannot be cast to {field.type}: {error}") from None
    value = fills[field.name]
    if callable(value):
        return pa.array(value(stored), type=field.type)
    return pa.array([value] * stored.num_rows, type=field.type)


def upgrade_file(path: Path, *, table: str, schema: pa.Schema) -> FileUpgrade:
    """Rewrite the file ``path`` of ``table`` to ``schema`` (atomically) unless it is current.

    Parameters
    ----------
    path : Path
        ``RESULTS/<table>/<name>.parquet``.
    table : str
        Its results table.
    schema : pyarrow.Schema
        Today's schema of ``table``.

    Returns
    -------
    FileUpgrade
        What was done; an unreadable file is left untouched, with the reason.
    """
    try:
        with pa.OSFile(str(path)) as file:  # as harness.results.read_parquet reads
            stored = pq.read_table(file)
    except (pa.ArrowException, OSError) as error:
        return FileUpgrade(
            table=table, path=path, outcome=Outcome.UNREADABLE, reason=f"not a valid Parquet table ({error})"
        )
    try:
        upgraded = upgraded_table(stored, table=table, schema=schema)
    except SchemaMismatchError as error:
        return FileUpgrade(table=table, path=path, outcome=Outcome.UNREADABLE, reason=str(error))
    if upgraded is None:
        return FileUpgrade(table=table, path=path, outcome=Outcome.CURRENT)
    write_table(path.parent.parent, table, path.stem, upgraded, schema)
    return FileUpgrade(table=table, path=path, outcome=Outcome.UPGRADED)


def upgrade_results(results_dir: Path) -> list[FileUpgrade]:
    """Rewrite every file of an older schema version in ``results_dir`` to today's schema of its table.

    Parameters
    ----------
    results_dir : Path
        A results folder: ``RESULTS/<table>/<name>.parquet`` for the harness's tables (other files and
        folders are not looked at).

    Returns
    -------
    list of FileUpgrade
        One per table file, table by table in :func:`harness.tables.all_tables` order, files by name.

    Raises
    ------
    ResultsDirError
        When ``results_dir`` is not a folder.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultsDirError(f"results folder {results_dir} does not exist")
    return [
        upgrade_file(path, table=table, schema=schema)
        for table, (_, schema) in all_tables().items()
        for path in sorted((results_dir / table).glob("*.parquet"))
    ]
