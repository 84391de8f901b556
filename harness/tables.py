"""Every Parquet table the harness writes, with its schema (for documentation and ``harness schema``)."""

from __future__ import annotations

import json

import pyarrow as pa

from harness.schema import SCHEMA_HISTORY, schema_version


def all_tables() -> dict[str, tuple[str, pa.Schema]]:
    """``{table: (what one row is, schema)}`` for every results table."""
    from harness.kernels import KERNEL_RUNS_SCHEMA
    from harness.rademacher import RADEMACHER_SCHEMA, TRIALS_SCHEMA
    from harness.schema import EPOCHS_SCHEMA, EXAMPLES_SCHEMA, MEMORIZATION_SCHEMA, RUNS_SCHEMA
    from harness.theory import store

    return {
        "runs": ("one training run (`harness run`, `harness sweep`)", RUNS_SCHEMA),
        "epochs": ("one epoch of a training run", EPOCHS_SCHEMA),
        "examples": ("one training example of a training run", EXAMPLES_SCHEMA),
        "memorization": (
            "one training example of a memorization estimate (`harness memorization`)",
            MEMORIZATION_SCHEMA,
        ),
        "kernel_runs": ("one kernel regression (`harness kernel`)", KERNEL_RUNS_SCHEMA),
        "rademacher": ("one Rademacher estimate (`harness rademacher`)", RADEMACHER_SCHEMA),
        "rademacher_trials": ("one trial of a Rademacher estimate", TRIALS_SCHEMA),
        "theory_expressivity": ("one `harness theory expressivity` run", store.EXPRESSIVITY),
        "theory_expressivity_sweep": ("one setting of `harness theory expressivity-sweep`", store.EXPRESSIVITY_SWEEP),
        "theory_min_norm": ("one `harness theory min-norm` run", store.MIN_NORM),
        "theory_min_norm_curves": ("one recorded SGD step of a min-norm run", store.MIN_NORM_CURVES),
    }


def older_value_text(value) -> str:
    """How the schema page shows a column's value in rows of older files."""
    if callable(value):
        return value.__doc__.strip().splitlines()[0].rstrip(".").replace("``", "`")
    return "null" if value is None else f"`{json.dumps(value)}`"


def history_markdown(table: str) -> str:
    """``table``'s schema version and, when it has had others, the columns each later version added."""
    version = schema_version(table)
    if version == 1:
        return "Schema version 1: every file has these columns."
    lines = [
        f"Schema version {version}. What each version added, with the values that rows of older files get "
        "(`harness results --upgrade` writes them):",
        "",
        "| version | columns: value in older rows | what came with them |",
        "| --- | --- | --- |",
    ]
    for change in SCHEMA_HISTORY[table]:
        added = "; ".join(f"`{name}`: {older_value_text(value)}" for name, value in change.added.items())
        lines.append(f"| {change.version} | {added} | {change.why} |")
    return "\n".join(lines)


def markdown() -> str:
    """The tables as markdown: a heading, a column table and the schema history each."""
    parts = []
    for table, (row, schema) in all_tables().items():
        parts.append(f"#### `{table}`: {row}\n\n| column | type | meaning |\n| --- | --- | --- |")
        for field in schema:
            kind = str(field.type).replace("list<item: string>", "list<string>")
            parts.append(f"| `{field.name}` | {kind} | {field.metadata[b'description'].decode()} |")
        parts += ["", history_markdown(table), ""]
    return "\n".join(parts)
