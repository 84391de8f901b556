"""Wall time and per-run overhead of one 16-run CPU sweep on each executor.

The sweep: mlp_1x512 on scikit-learn's digits (1,000 training images, true and random
labels, 8 seeds, 5 epochs). Each executor runs it from scratch into its own results folder,
in a fresh process (so engine start-up counts), one after the other.

- wall: from the call of ``run_sweep`` to its return.
- first start: from that call to the earliest ``started_at`` of a run (engine start-up,
  worker start, imports, data preparation).
- overhead per run: (wall × runs at once − Σ run wall_seconds) / runs: the slot time not
  spent training (submission, process start, imports, data, storing), per run.

    python benchmarks/sweep_executors.py local:jobs=1 local:jobs=2 ray submitit:cluster=local \
        submitit:cluster=slurm   # the last needs Slurm (scripts/slurm-local-cluster.sh)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS_AT_ONCE = 2


def measure(executor: str, options: dict, results_dir: Path) -> dict:
    """Run the sweep once on ``executor`` and measure it (in this process)."""
    from harness.config import RunConfig
    from harness.executors import ExecutorSettings
    from harness.results import read_table
    from harness.runner import resolve_config
    from harness.sweep import Sweep, run_sweep

    configs = [
        resolve_config(
            RunConfig(
                model="mlp_1x512",
                dataset="digits",
                corruption=corruption,
                seed=seed,
                train_size=1000,
                test_size=297,
                max_epochs=5,
            )
        )
        for corruption in ("none", "random_labels")
        for seed in range(8)
    ]
    jobs = int(options.pop("jobs", RUNS_AT_ONCE))
    if executor == "submitit" and options.get("cluster") == "slurm":
        options.setdefault("cpus_per_task", 1)
        options.setdefault("timeout_min", 30)
    load_before = os.getloadavg()
    start_wall, start = time.time(), time.perf_counter()
    summary = run_sweep(
        Sweep(configs=configs, executor=executor, executor_options=options),
        ExecutorSettings(results_dir=results_dir, device="cpu", jobs=jobs),
        poll_seconds=0.2,
    )
    wall = time.perf_counter() - start
    rows = read_table(results_dir, "runs").to_pylist()
    assert summary.count("completed") == len(configs) == len(rows), summary
    limited_by_jobs = executor == "local" or options.get("cluster") == "local"
    slots = jobs if limited_by_jobs else RUNS_AT_ONCE
    training = sum(r["wall_seconds"] for r in rows)
    return {
        "executor": executor
        + "".join(f" {k}={v}" for k, v in options.items())
        + (f" jobs={jobs}" if limited_by_jobs else ""),
        "runs": len(rows),
        "wall_s": round(wall, 1),
        "first_start_s": round(min(r["started_at"].timestamp() for r in rows) - start_wall, 1),
        "overhead_per_run_s": round((wall * slots - training) / len(rows), 2),
        "training_s": round(training, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def parse(argument: str) -> tuple[str, dict]:
    from harness.executors import parse_option

    name, _, rest = argument.partition(":")
    return name, dict(parse_option(option) for option in rest.split(",") if option)


def main(arguments: list[str]) -> None:
    if arguments and arguments[0] == "--one":
        name, options = parse(arguments[1])
        print(json.dumps(measure(name, options, Path(arguments[2]))))
        return
    print(
        "| executor | runs | wall (s) | first start (s) | overhead per run (s) | Σ training (s) | load avg before → after |"
    )
    print("|---|---|---|---|---|---|---|")
    for argument in arguments:
        with tempfile.TemporaryDirectory(dir=os.environ.get("HARNESS_BENCH_DIR")) as folder:
            out = subprocess.run([sys.executable, __file__, "--one", argument, folder], capture_output=True, text=True)
        if out.returncode:
            print(f"| {argument} | failed: {out.stderr.strip().splitlines()[-1]} |||||")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {r['executor']} | {r['runs']} | {r['wall_s']} | {r['first_start_s']} | {r['overhead_per_run_s']} | "
            f"{r['training_s']} | {r['load_before'][0]} → {r['load_after'][0]} |",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
