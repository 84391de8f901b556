import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from harness.cli import create_app
from harness.kernels import KERNEL_RUNS_SCHEMA
from harness.rademacher import RADEMACHER_SCHEMA
from harness.reports import html
from harness.results import write_table
from harness.schema import EPOCHS_SCHEMA, RUNS_SCHEMA
from harness.theory import store as theory

SECTION_IDS = ("table1", "table2", "fig1", "fig2", "table3", "theory", "runs")
FIGURE_IDS = ("fig1a", "fig1b", "fig1c", "fig2b", "min-norm-curves")


def blank(schema) -> dict:
    return {name: None for name in schema.names}


def add_run(
    folder,
    run_id,
    model,
    corruption="none",
    p=1.0,
    epochs=3,
    fit_epoch=None,
    status="completed",
    dataset="cifar10",
    regularizers=(),
    train_size=256,
):
    """A stored run with one epoch row per epoch: loss falls, accuracies rise."""
    steps = 8
    run = {
        **blank(RUNS_SCHEMA),
        "run_id": run_id,
        "status": status,
        "model": model,
        "dataset": dataset,
        "corruption": corruption,
        "corrupt_prob": p,
        "regularizers": list(regularizers),
        "seed": 0,
        "train_size": train_size,
        "test_size": 500,
        "epochs": epochs,
        "max_epochs": 10,
        "steps": steps * epochs,
        "batch_size": 32,
        "lr": 0.01,
        "lr_decay": 1.0,
        "momentum": 0.9,
        "param_count": 1000,
        "train_acc": 1.0 if fit_epoch else 0.5,
        "test_acc": 0.1 + 0.1 * (1 - p),
        "fit_epoch": fit_epoch,
        "fit_step": fit_epoch * steps if fit_epoch else None,
        "best_test_acc": 0.3,
        "device": "cuda:0",
        "started_at": datetime(2026, 1, 1, tzinfo=UTC),
        "error": "boom" if status == "failed" else None,
    }
    history = [
        {
            **blank(EPOCHS_SCHEMA),
            "run_id": run_id,
            "epoch": e,
            "step": steps * e,
            "train_loss": 2.0 / e,
            "train_acc": e / epochs,
            "test_acc": 0.1 + 0.05 * e,
        }
        for e in range(1, epochs + 1)
    ]
    write_table(folder, "runs", run_id, [run], RUNS_SCHEMA)
    write_table(folder, "epochs", run_id, history, EPOCHS_SCHEMA)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Runs for part of every report: MLP 1x512 corruptions and levels, Inception ± BN, a kernel run, theory."""
    folder = tmp_path_factory.mktemp("results")
    for corruption in ("none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"):
        add_run(folder, f"mlp-{corruption}", "mlp_1x512", corruption, fit_epoch=2)
    for p, fit in ((0.0, 1), (0.5, 2), (1.0, 3)):
        add_run(folder, f"mlp-p{p}", "mlp_1x512", "random_labels", p, fit_epoch=fit, train_size=512)
    add_run(folder, "bn", "inception", epochs=4)
    add_run(folder, "nobn", "inception_nobn", epochs=4)
    add_run(folder, "broken", "alexnet", status="failed")
    add_run(folder, "digits-run", "mlp_1x512", dataset="digits")
    add_run(folder, "v3-wd", "inception_v3", dataset="imagenet", regularizers=("weight_decay=4e-5",))
    kernel = {
        **blank(KERNEL_RUNS_SCHEMA),
        "run_id": "kernel-mnist",
        "status": "completed",
        "dataset": "mnist",
        "features": "none",
        "feature_options": "{}",
        "kernel": "gaussian",
        "bandwidth": 0.02,
        "ridge": 0.0,
        "corruption": "none",
        "train_size": 2000,
        "test_size": 1000,
        "test_error": 0.031,
        "rkhs_norm": 80.5,
        "dtype": "float64",
        "device": "cpu",
        "wall_seconds": 3.0,
    }
    write_table(folder, "kernel_runs", "kernel-mnist", [kernel], KERNEL_RUNS_SCHEMA)
    expressivity = {
        **blank(theory.EXPRESSIVITY),
        "run_id": "expr",
        "n": 100,
        "d": 20,
        "n_weights": 220,
        "dtype": "float64",
        "labels": "random",
        "max_abs_error": 1e-12,
        "lambda_min": 0.004,
        "min_gap": 0.004,
        "w_norm": 50.0,
    }
    write_table(folder, "theory_expressivity", "expr", [expressivity], theory.EXPRESSIVITY)
    min_norm = {
        **blank(theory.MIN_NORM),
        "run_id": "minnorm",
        "n": 20,
        "d": 200,
        "steps": 100,
        "lr": 0.01,
        "rel_dist_zero_init": 1e-6,
        "rel_dist_random_init": 0.9,
        "predicted_plateau": 0.9,
    }
    write_table(folder, "theory_min_norm", "minnorm", [min_norm], theory.MIN_NORM)
    rademacher = {
        **blank(RADEMACHER_SCHEMA),
        "run_id": "rad",
        "model": "mlp_1x512",
        "dataset": "cifar10",
        "n": 50,
        "trials": 2,
        "fitted_trials": 2,
        "estimate": 0.97,
        "estimate_std": 0.01,
        "device": "cpu",
    }
    write_table(folder, "rademacher", "rad", [rademacher], RADEMACHER_SCHEMA)
    curves = [
        {"run_id": "minnorm", "init": init, "step": step, "loss": 1.0 / step, "rel_dist": start / step}
        for init, start in (("zero", 1.0), ("random", 2.0))
        for step in (1, 10, 100)
    ]
    write_table(folder, "theory_min_norm_curves", "minnorm", curves, theory.MIN_NORM_CURVES)
    return folder


@pytest.fixture(scope="module")
def page(results):
    text, missing = html.build(results, "cifar10", "mlp_1x512")
    return text, missing


def section_of(text: str, ident: str) -> str:
    start = text.index(f'<section id="{ident}">')
    return text[start : text.index("</section>", start)]


def test_every_section_and_figure_is_on_the_page(page):
    text, _ = page
    for ident in SECTION_IDS:
        assert f'<section id="{ident}">' in text
    for ident in FIGURE_IDS:
        assert f'id="{ident}" class="plotly-graph-div"' in text
    ids = re.findall(r' id="([^"]+)"', text)
    assert len(ids) == len(set(ids))  # plotly draws into the first element of a figure's id


def test_the_page_needs_no_network(page):
    text, _ = page
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text)
    assert text.count("<script") == 1 + len(FIGURE_IDS) + 1  # plotly.js, one per figure, the table script


def test_table1_cells_stand_beside_the_paper_with_their_runs(page):
    table = section_of(page[0], "table1")
    inception = re.search(r"<tr><td[^>]*>Inception</td>.*?</tr>", table.replace("\n", ""))
    assert inception and "89.05" in inception.group(0) and "no run" in inception.group(0)
    no_reg = [row for row in re.findall(r"<tr>.*?</tr>", table) if "MLP 1x512" in row and "50.51" in row][0]
    assert 'href="#run-mlp-none"' in no_reg and "train 256, test 500" in no_reg and "cuda:0" in no_reg
    assert "sweeps/table1.toml" in table and "sweeps/table1-cpu.toml" in table and "alexnet true labels" in table


def test_table2_cells_stand_beside_the_paper_with_their_runs(page):
    text, missing = page
    rows = re.findall(r"<tr>.*?</tr>", section_of(text, "table2"))
    assert len(rows) == 1 + 7  # the header, the paper's rows
    wd = rows[3]  # true labels, weight decay only
    assert ">67.18 (72.57)<" in wd and ">86.44 (90.48)<" in wd  # the paper's, best test in parentheses
    assert ">50.00<" in wd and ">10.00 (30.00)<" in wd  # ours: train, then test with its best
    assert 'href="#run-v3-wd"' in wd and "train 256, test 500" in wd
    assert "no run" in rows[4] and "59.80 (63.16)" in rows[4]
    assert any(line.startswith("Table 2: 6 run(s) missing") for line in missing)


def test_figures_carry_run_and_epoch_for_hover_and_the_papers_marks(page):
    text, _ = page
    fig1 = section_of(text, "fig1")
    assert '["mlp-gaussian",1]' in fig1 and '["mlp-gaussian",3]' in fig1  # (run, epoch) of each point
    assert "paper (plot reading)" in fig1 and "paper MLP 1x512" in fig1
    assert "mlp-p0.5" in fig1  # the runs behind a Figure 1b/c point
    assert "inception random_labels" in section_of(text, "fig1")  # fig1bc lacks Inception: named as missing
    fig2 = section_of(text, "fig2")
    assert '["bn",4]' in fig2 and '["nobn",2]' in fig2 and "85.75" in fig2 and "82.00" in fig2


def test_table3_and_theory_show_runs_and_name_what_is_missing(page):
    text, missing = page
    table3 = section_of(text, "table3")
    assert "kernel-mnist" in table3 and ">3.1<" in table3 and ">1.2<" in table3 and ">+1.90<" in table3
    assert "harness kernel --dataset mnist --features gabor" in table3
    theory_part = section_of(text, "theory")
    assert "<code>expr</code>" in theory_part and ">220<" in theory_part and "1e-06" in theory_part
    assert "<code>rad</code>" in theory_part and ">0.97<" in theory_part and "(paper: ≈ 1)" in theory_part
    assert "harness theory expressivity-sweep" in theory_part
    assert [line for line in missing if line.startswith("Theory")] == [
        "Theory: no theory_expressivity_sweep rows (make them with `harness theory expressivity-sweep`)"
    ]
    assert any("gabor" in line for line in missing) and not any("MNIST, no preprocessing" in line for line in missing)


def test_runs_table_lists_every_run_of_the_folder(page):
    runs = section_of(page[0], "runs")
    body = runs[runs.index("<tbody>") :]
    assert body.count("<tr>") == 13
    assert 'id="run-broken"' in body and "boom" in body and 'id="run-digits-run"' in body
    assert 'class="filter" data-table="runs-table"' in runs


def test_an_empty_folder_gives_every_section_with_what_to_run(tmp_path):
    text, missing = html.build(tmp_path / "none")
    for ident in SECTION_IDS:
        assert f'<section id="{ident}">' in text
    assert text.count('class="empty"') == len(FIGURE_IDS) - 1  # the min-norm figure comes with its runs
    assert [line.split(":")[0] for line in missing] == ["Table 1", "Table 2", "Figure 1", "Figure 1", "Figure 2b"] + [
        "Table 3"
    ] * 4 + ["Theory"] * 4


def test_cli_writes_the_page(results, tmp_path):
    out = tmp_path / "sub" / "report.html"
    outcome = CliRunner().invoke(
        create_app(), ["report", "html", "--results-dir", str(results), "--out", str(out), "--plugin", "mlp_1x512"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "wrote" in outcome.stdout and out.read_text().startswith("<!DOCTYPE html>")
    assert "missing" in outcome.stderr and "sweeps/table1.toml" in outcome.stderr
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left


def test_cli_names_a_results_folder_that_does_not_exist(tmp_path):
    outcome = CliRunner().invoke(
        create_app(),
        ["report", "html", "--results-dir", str(tmp_path / "typo"), "--out", str(tmp_path / "report.html")],
    )
    assert (
        outcome.exit_code == 2 and "typo does not exist" in outcome.stderr and not (tmp_path / "report.html").exists()
    )


# ---------------------------------------------------------------- in a real browser

BROWSER = next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
)

PROBE = """<script>
const table = document.getElementById("runs-table");
const column = Array.from(table.tHead.rows[0].cells).findIndex(th => th.textContent === "train_size");
table.tHead.rows[0].cells[column].click();
document.body.dataset.sorted = Array.from(table.tBodies[0].rows, row => row.cells[column].dataset.sort).join(",");
const filter = document.querySelector("input.filter");
filter.value = "failed alexnet";
filter.dispatchEvent(new Event("input"));
document.body.dataset.shown = Array.from(table.tBodies[0].rows).filter(row => !row.hidden).length;
const figure = document.getElementById("fig1a");
Plotly.Fx.hover(figure, [{curveNumber: 0, pointNumber: 1}]);
document.body.dataset.hover = figure.querySelector(".hovertext").textContent;
</script>"""
"""Sorts the runs table by train_size, filters it and hovers a point of Figure 1a; writes what it saw onto <body>."""


def chromium(profile, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
    ]
    return subprocess.run([BROWSER, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_page_in_headless_chromium(results, tmp_path):
    out, _ = html.write(results, tmp_path / "report.html", "cifar10", "mlp_1x512")
    loaded = chromium(tmp_path / "profile", "--dump-dom", out.as_uri())
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    console = [line for line in loaded.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    dom = loaded.stdout
    for ident in SECTION_IDS:
        assert f'<section id="{ident}">' in dom
    for ident in FIGURE_IDS:  # drawn by plotly.js: an SVG inside
        drawn = re.search(rf'<div id="{ident}" class="plotly-graph-div js-plotly-plot".*?class="main-svg"', dom, re.S)
        assert drawn, f"figure {ident} was not drawn"

    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", PROBE + "</body>"))
    probed = chromium(tmp_path / "profile-probe", "--dump-dom", probe.as_uri())
    body = re.search(r'<body data-sorted="([^"]*)" data-shown="(\d+)" data-hover="([^"]*)"', probed.stdout)
    assert body, probed.stderr[-2000:]
    sizes = [int(size) for size in body.group(1).split(",")]
    assert sizes == sorted(sizes) and set(sizes) == {256, 512}
    assert body.group(2) == "1"
    assert "run mlp-none" in body.group(3) and "epoch 2" in body.group(3)  # the first curve is true labels

    screenshot = tmp_path / "report.png"
    shot = chromium(tmp_path / "profile-shot", f"--screenshot={screenshot}", "--window-size=1400,7000", out.as_uri())
    assert shot.returncode == 0 and screenshot.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {screenshot}")
