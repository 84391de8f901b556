"""Claims (harness.claims): one driver trains a run; a dead driver's claim is taken over once stale."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from test_sweep import DIGITS, sweep_command, write_spec

from harness.claims import (
    DEFAULT_TIMEOUT,
    TIMEOUT_ENV,
    claim_path,
    claimed,
    configured_timeout,
    holder,
    take_over,
    this_process,
)
from harness.errors import ConfigError
from harness.executors import ExecutorSettings, Pack, run_pack
from harness.sweep import Sweep, load_sweep, run_sweep, sweep_status


def race(takers: int, claim) -> list[bool]:
    """Whether each of ``takers`` threads, started together, got the claim ``claim()`` (a context manager);
    every thread holds what it got until all have tried."""
    start, tried = threading.Barrier(takers), threading.Barrier(takers)
    got = [False] * takers

    def take(index: int) -> None:
        start.wait()
        with claim() as mine:
            got[index] = mine is not None
            tried.wait()

    threads = [threading.Thread(target=take, args=(index,)) for index in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


def stale_claim(results, run_id: str, seconds: float):
    """A claim file of a driver that has been silent for ``seconds``."""
    path = claim_path(results, run_id)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "gone", "pid": 1, "token": "old"}) + "\n")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_only_one_of_racing_drivers_gets_a_free_claim(tmp_path):
    assert sum(race(8, lambda: claimed(tmp_path, "run", timeout=60))) == 1
    assert not list((tmp_path / "claims").iterdir())


def test_a_claim_names_its_holder_and_is_free_again_once_released(tmp_path):
    with claimed(tmp_path, "run", timeout=60) as mine:
        line = json.loads(claim_path(tmp_path, "run").read_text())
        assert line == {**this_process(), "token": mine.token} and line["pid"] == os.getpid()
        held_by = holder(tmp_path, "run")
        assert (held_by.host, held_by.pid) == (socket.gethostname(), os.getpid()) and 0 <= held_by.age < 5
        with claimed(tmp_path, "run", timeout=60) as theirs:
            assert theirs is None
    assert holder(tmp_path, "run") is None and not list((tmp_path / "claims").iterdir())
    with claimed(tmp_path, "run", timeout=60) as again:
        assert again is not None


def test_the_heartbeat_keeps_a_long_run_claimed(tmp_path):
    with claimed(tmp_path, "run", timeout=0.5):
        time.sleep(1.5)
        with claimed(tmp_path, "run", timeout=0.5) as theirs:
            assert theirs is None


def test_a_stale_claim_is_taken_over_by_exactly_one_of_racing_drivers(tmp_path):
    path = stale_claim(tmp_path, "run", seconds=100)
    assert holder(tmp_path, "run").age > 99  # the file system's clock is coarse: it may lag by a tick
    with claimed(tmp_path, "run", timeout=200) as not_yet:
        assert not_yet is None
    assert sum(race(8, lambda: claimed(tmp_path, "run", timeout=10))) == 1
    assert not path.exists() and not list(path.parent.iterdir())


def test_a_late_taker_leaves_the_claim_a_faster_taker_made(tmp_path):
    """A taker that judged a claim stale while another took it over judges it again under the lock."""
    with claimed(tmp_path, "run", timeout=60) as mine:
        assert take_over(claim_path(tmp_path, "run"), timeout=60) is None
        assert mine.held() and [p.name for p in (tmp_path / "claims").iterdir()] == ["run.claim"]


def test_the_takeover_lock_of_a_taker_that_died_is_moved_aside_once_stale(tmp_path):
    path = stale_claim(tmp_path, "run", seconds=100)
    lock = path.with_name(".run.claim.takeover")
    lock.touch()
    assert take_over(path, timeout=10) is None  # another taker is at it
    then = time.time() - 20
    os.utime(lock, (then, then))
    assert take_over(path, timeout=10) is not None
    assert [p.name for p in path.parent.iterdir()] == ["run.claim"] and holder(tmp_path, "run").pid == os.getpid()
    path.unlink()


def test_releasing_a_claim_taken_over_leaves_the_new_holders(tmp_path):
    with claimed(tmp_path, "run", timeout=600) as slow:
        then = time.time() - 100
        os.utime(claim_path(tmp_path, "run"), (then, then))
        with claimed(tmp_path, "run", timeout=10) as taker:
            assert taker is not None and not slow.held()
        assert holder(tmp_path, "run") is None
    with claimed(tmp_path, "run", timeout=10) as taker:
        with claimed(tmp_path, "run", timeout=600) as slow:
            assert slow is None
        assert taker.held()


def test_the_claim_of_an_ended_process_of_this_host_is_taken_over_at_once(tmp_path):
    holding = "from harness.claims import claimed; import sys, time\nwith claimed(sys.argv[1], 'run'): print(flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", holding, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        process.stdout.readline()
        with claimed(tmp_path, "run", timeout=600) as mine:
            assert mine is None  # it runs
    finally:
        process.kill()
        process.wait()
    with claimed(tmp_path, "run", timeout=600) as mine:
        assert mine is not None


def test_the_timeout_is_ten_minutes_unless_the_environment_sets_it(tmp_path, monkeypatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert configured_timeout() == DEFAULT_TIMEOUT == 600
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    assert configured_timeout() == 2.5 and ExecutorSettings(results_dir=tmp_path).claim_timeout == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=f"{TIMEOUT_ENV} must be a number of seconds above 0, got '{bad}'"):
            configured_timeout()


def test_a_sweep_leaves_a_claimed_run_to_its_holder_and_status_names_it(tmp_path):
    spec = write_spec(tmp_path / "s.toml", '[grid]\nplugin = ["mlp_1x512"]\nseed = [0, 1]', {**DIGITS, "epochs": 1})
    configs, results = load_sweep(spec).configs, tmp_path / "r"
    with claimed(results, configs[0].run_id, timeout=60):
        [state, _] = sweep_status(configs, results)
        assert state.state == "started" and state.detail.startswith(f"claimed by {socket.gethostname()} pid")
        summary = run_sweep(Sweep(configs=configs), ExecutorSettings(results_dir=results, device="cpu"))
        assert [r.status for r in summary.results] == ["claimed", "completed"] and summary.count("claimed") == 1
    assert [s.state for s in sweep_status(configs, results)] == ["missing", "completed"]
    assert not list((results / "claims").iterdir())
    # Once claimed, a run completed meanwhile by the other driver is skipped, not trained again.
    assert [r.status for r in run_pack(Pack((configs[1],)), ExecutorSettings(results_dir=results, device="cpu"))] == [
        "skipped"
    ]


def finished_line(output: str) -> dict[str, int]:
    """The counts of a sweep's last lines: completed, skipped, ... and the runs left to another driver."""
    text = " ".join(output.split())
    counts = {name: int(n) for n, name in re.findall(r"(\d+) (completed|skipped|failed|interrupted)", text)}
    left = re.search(r"left (\d+) runs to another driver", text)
    return {**counts, "left": int(left.group(1)) if left else 0}


def test_two_sweeps_started_together_train_each_run_once(tmp_path):
    spec = write_spec(
        tmp_path / "s.toml",
        f'log = ["tensorboard"]\n[grid]\nplugin = ["mlp_1x512"]\nseed = {list(range(8))}',
        {
            **DIGITS,
            "train_size": 1000,
            "corruption": "random_labels",
            "epochs": 8,
        },  # each run takes a while: the drivers overlap
    )
    results = tmp_path / "r"
    drivers = [
        subprocess.Popen(sweep_command(spec, results, 1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        outputs = [driver.communicate(timeout=300) for driver in drivers]
    finally:
        for driver in drivers:
            driver.kill()  # only where a test failure left it running
    for driver, (stdout, stderr) in zip(drivers, outputs):
        assert driver.returncode == 0, stdout + stderr
    # Every training writes its own TensorBoard event file: one per run means no run trained twice.
    trainings = {run.name: len(list(run.glob("events.out.tfevents.*"))) for run in (results / "tensorboard").iterdir()}
    assert trainings == {config.run_id: 1 for config in load_sweep(spec).configs}
    counts = [finished_line(stdout) for stdout, _ in outputs]
    for count in counts:
        assert count["completed"] + count["skipped"] + count["left"] == 8 and count["failed"] == 0, counts
    assert sum(count["completed"] for count in counts) == 8 and sum(count["left"] for count in counts) > 0, counts
    assert not list((results / "claims").iterdir())


def test_a_killed_drivers_claim_is_taken_over_after_the_timeout(tmp_path, monkeypatch):
    """A driver of another node (its host name) SIGKILLed while it trains: its run waits for the timeout."""
    monkeypatch.setenv(TIMEOUT_ENV, "3")
    spec = write_spec(tmp_path / "s.toml", '[grid]\nplugin = ["mlp_1x512"]\nseed = [0]', {**DIGITS, "epochs": 30})
    configs, results = load_sweep(spec).configs, tmp_path / "r"
    command = sweep_command(spec, results, 1)
    command[2] = "import socket; socket.gethostname = lambda: 'another-node'; " + command[2]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while driver.poll() is None and holder(results, configs[0].run_id) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    while driver.poll() is None and holder(results, configs[0].run_id).host == "?":  # its line is being written
        time.sleep(0.01)
    driver.kill()
    driver.communicate(timeout=60)
    assert driver.returncode == -signal.SIGKILL
    claim = holder(results, configs[0].run_id)
    assert (claim.host, claim.pid) == ("another-node", driver.pid)

    assert [
        r.status for r in run_sweep(Sweep(configs=configs), ExecutorSettings(results_dir=results, device="cpu")).results
    ] == ["claimed"]
    while holder(results, configs[0].run_id).age < 3:
        time.sleep(0.1)
    summary = run_sweep(Sweep(configs=configs), ExecutorSettings(results_dir=results, device="cpu"))
    assert [r.status for r in summary.results] == ["completed"] and summary.results[0].row["epochs"] == 30
    assert not list((results / "claims").iterdir())
