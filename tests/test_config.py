"""A run's configuration: its id never changes (stored runs are found by it), and its runs columns."""

from harness.config import CONFIG_COLUMNS, RunConfig
from harness.runner import resolve_config
from harness.schema import RUNS_SCHEMA

NOISE = dict(model="mlp_1x512", corruption="random_labels", train_size=200, test_size=200, max_epochs=3)


def test_run_ids_are_those_the_stored_runs_were_made_with():
    # Ids of the configurations as they were first stored, when the epoch limit was `epochs` and a
    # random subset was one `subset` field.
    assert resolve_config(RunConfig(**NOISE)).run_id == "674a4c568a5741bf"
    subset = RunConfig(**NOISE, subset_fraction=0.5, subset_seed=2, precision="bf16")
    assert resolve_config(subset).run_id == "9dcab7a02c121a79"


def test_execution_options_are_recorded_not_hashed():
    plain = resolve_config(RunConfig(**NOISE))
    faster = resolve_config(RunConfig(**NOISE, channels_last=True, compile=True))
    assert plain.run_id == faster.run_id and plain.to_row() != faster.to_row()


def test_the_row_holds_every_column_named_like_a_field():
    row = resolve_config(RunConfig(**NOISE, regularizers=("dropout=0.5",))).to_row()
    assert set(row) == {"run_id", *CONFIG_COLUMNS} and set(row) <= set(RUNS_SCHEMA.names)
    assert row["max_epochs"] == 3 and row["regularizers"] == ["dropout=0.5"] and "train_size" not in row


def test_runs_whose_corruption_draws_changed_get_new_ids_and_the_others_keep_theirs():
    from pathlib import Path

    from harness.results import read_table
    from harness.sweep import load_sweep

    fig1a = {c.corruption: c for c in load_sweep(Path(__file__).parent.parent / "sweeps" / "fig1a-cpu.toml").configs}
    # The ids the configurations of random_pixels and gaussian had before corruption scheme 2.
    assert resolve_config(fig1a["random_pixels"]).run_id != "135267f74b1f1655"
    assert resolve_config(fig1a["gaussian"]).run_id != "9b70d72fc16c0609"
    shipped = read_table(Path(__file__).parent.parent / "reproduction" / "cpu-2core", "runs").to_pylist()
    made_under_scheme_1 = {r["run_id"] for r in shipped if r["corruption_scheme"] == 1}
    for corruption in ("none", "random_labels", "shuffled_pixels"):  # drawn as they always were
        assert resolve_config(fig1a[corruption]).run_id in made_under_scheme_1
