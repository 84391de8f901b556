"""scripts/gpu-sitting.sh without a GPU: the data packed into parts that each fit one call, received
and checked part by part on the far side (SITTING_WORK=none: no GPU work), and what comes back
unpacked into the checkout; and scripts/reproduce-gpu.sh, which runs the same tasks on one machine,
with stand-ins for python and harness."""

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPOSITORY = Path(__file__).parent.parent
SCRIPT = REPOSITORY / "scripts" / "gpu-sitting.sh"
REPRODUCE = REPOSITORY / "scripts" / "reproduce-gpu.sh"
MARGIN = 1000
ROOM = 12_000  # data bytes per call: a few KB of fake data make several parts

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="prepare measures the tree with git")


def fake_data(root: Path) -> dict[str, bytes]:
    """A few KB of random bytes in the layout HARNESS_DATA_ROOT holds."""
    rng = __import__("random").Random(0)
    sizes = {
        "MNIST/raw/train-images-idx3-ubyte": 6000,
        "MNIST/raw/train-labels-idx1-ubyte": 600,
        "MNIST/raw/t10k-images-idx3-ubyte": 1000,
        "MNIST/raw/t10k-labels-idx1-ubyte": 100,
        "cifar10/train.npz": 20_000,
        "cifar10/test.npz": 5000,
    }
    files = {name: rng.randbytes(size) for name, size in sizes.items()}
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return files


def checkout(path: Path, git: bool = True) -> Path:
    """A checkout holding the scripts (and, with git, one tracked file)."""
    (path / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, path / "scripts" / "gpu-sitting.sh")
    shutil.copy(REPRODUCE, path / "scripts" / "reproduce-gpu.sh")
    (path / "README.md").write_text("x" * 5000)
    if git:
        subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def tree_bytes(path: Path) -> int:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=path, capture_output=True, check=True
    ).stdout
    return sum((path / name).stat().st_size for name in listed.decode().split("\0") if name)


def sitting(
    script_root: Path, *args: str, check: bool = True, script: str = "gpu-sitting.sh", **env: str
) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": str(script_root.parent / "home"), "SITTING_PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(script_root / "scripts" / script), *args],
        env={**base, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # a step sends both to its log
        text=True,
        check=check,
        timeout=120,
    )


def manifest(path: Path) -> dict[str, list[str]]:
    lines = [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]
    return {fields[0]: fields[1:] for fields in lines}


@pytest.fixture
def prepared(tmp_path):
    """A checkout with its data prepared in parts, and the limit that sized them."""
    data = tmp_path / "data"
    files = fake_data(data)
    here = checkout(tmp_path / "here")
    limit = tree_bytes(here) + MARGIN + ROOM
    done = sitting(here, "prepare", str(data), SITTING_CALL_LIMIT_BYTES=str(limit), SITTING_MARGIN_BYTES=str(MARGIN))
    return here, files, limit, done.stdout


def test_prepare_makes_parts_that_each_fit_one_call(prepared):
    here, files, limit, said = prepared
    parts = sorted((here / ".sitting").glob("part-*"))
    listed = manifest(here / ".sitting" / "manifest")
    assert len(parts) == int(listed["parts"][0]) >= 3
    tree = tree_bytes(here)  # .sitting/ ignores itself: it travels only when carried
    status = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, check=True)
    assert ".sitting" not in status.stdout
    for part in parts:
        assert tree + part.stat().st_size + MARGIN <= limit
        assert listed[part.name] == [str(part.stat().st_size), hashlib.md5(part.read_bytes()).hexdigest()]
    archive = b"".join(part.read_bytes() for part in parts)
    assert listed["archive_md5"] == [hashlib.md5(archive).hexdigest()]
    assert int(listed["mnist_bytes"][0]) <= parts[0].stat().st_size  # MNIST arrives with the first call
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz", ignore_zeros=True) as tar:  # tar -xzif
        assert {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()} == files
    for k in range(1, len(parts) + 1):
        assert f"call {k} of {len(parts)}" in said
        assert f"command: bash scripts/gpu-sitting.sh step {k}\n" in said
        assert f'carry:   [".sitting/part-{k:02d}", ".sitting/manifest"]' in said
    assert "Table 3 on MNIST" in said.split(f"call 2 of {len(parts)}")[0]


def test_prepare_refuses_a_data_folder_without_the_data(tmp_path):
    here = checkout(tmp_path / "here")
    (tmp_path / "data" / "MNIST" / "raw").mkdir(parents=True)
    done = sitting(here, "prepare", str(tmp_path / "data"), check=False)
    assert done.returncode == 1 and "train-images-idx3-ubyte is missing" in done.stdout


def receive(tmp_path: Path, here: Path, k: int, **env: str) -> subprocess.CompletedProcess:
    """Call k on the far side: a fresh copy of the checkout at a new path, with part k and the manifest
    carried, and the persistent folder it shares with the other calls."""
    far = checkout(tmp_path / f"far-{k}", git=False)
    (far / ".sitting").mkdir()
    for name in (f"part-{k:02d}", "manifest"):
        shutil.copy(here / ".sitting" / name, far / ".sitting" / name)
    out = tmp_path / f"out-{k}"
    out.mkdir()
    env = {"SITTING_WORK": "none", "SITTING_HOME": str(tmp_path / "persistent"), "OUT": str(out), **env}
    return sitting(far, "step", str(k), check=False, **env)


def unpacked(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name[0] != "."}


def test_the_far_side_receives_checks_and_unpacks_the_data(tmp_path, prepared):
    here, files, _, _ = prepared
    calls = len(list((here / ".sitting").glob("part-*")))
    data = tmp_path / "persistent" / "data"
    mnist = {name: content for name, content in files.items() if name.startswith("MNIST")}
    for k in range(1, calls + 1):
        done = receive(tmp_path, here, k)
        assert done.returncode == 0, done.stdout
        assert f"parts here: {k} of {calls}" in done.stdout
        assert unpacked(data) == (files if k == calls else mnist)  # MNIST from the first call on
        assert not (tmp_path / f"far-{k}" / ".sitting" / f"part-{k:02d}").exists()  # moved out of the checkout
        out = sorted(p.name for p in (tmp_path / f"out-{k}").iterdir())
        assert {f"step-{k}.log", f"machine-{k}.txt", f"sitting-{k}.md5", f"sitting-{k}.tar.gz.00"} <= set(out)
        assert len(out) <= 8
    assert "all the data checked" in done.stdout


def test_a_corrupted_part_fails_loudly(tmp_path, prepared):
    here, _, _, _ = prepared
    assert receive(tmp_path, here, 1).returncode == 0
    part = here / ".sitting" / "part-02"
    damaged = bytearray(part.read_bytes())
    damaged[100] ^= 0xFF
    part.write_bytes(bytes(damaged))
    done = receive(tmp_path, here, 2)
    assert done.returncode == 1
    assert "part-02 is corrupted: md5" in done.stdout and "carry it again" in done.stdout
    assert "part-02 is corrupted" in (tmp_path / "out-2" / "step-2.log").read_text()  # the log still comes back
    assert (tmp_path / "out-2" / "sitting-2.md5").exists()


def test_a_joined_archive_that_does_not_match_the_manifest_fails(tmp_path, prepared):
    here, _, _, _ = prepared
    path = here / ".sitting" / "manifest"
    path.write_text(path.read_text().replace("archive_md5 ", "archive_md5 0"))
    calls = len(list((here / ".sitting").glob("part-*")))
    for k in range(1, calls):
        assert receive(tmp_path, here, k).returncode == 0
    done = receive(tmp_path, here, calls)
    assert done.returncode == 1 and "the joined parts are corrupted" in done.stdout
    assert not (tmp_path / "persistent" / "data" / "cifar10").exists()


def test_a_missing_manifest_is_named(tmp_path):
    far = checkout(tmp_path / "far", git=False)
    done = sitting(far, "step", "1", check=False, SITTING_HOME=str(tmp_path / "p"), OUT=str(tmp_path / "out"))
    assert done.returncode == 1 and "carry .sitting/part-NN and .sitting/manifest" in done.stdout


def run_table(path: Path, run_id: str, status: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"run_id": [run_id], "status": [status]}), path)


def test_what_comes_back_is_unpacked_into_the_checkout(tmp_path, prepared):
    """The far side sends back the bundle's new tables and checkpoints (here: files dated after the
    call began); unpack puts them into the bundle, drops the checkpoints of completed runs, and says
    what to commit."""
    here, _, _, _ = prepared
    far = checkout(tmp_path / "far", git=False)
    bundle = far / "reproduction" / "h200"
    run_table(bundle / "runs" / "old.parquet", "old", "completed")  # already here: does not come back
    run_table(bundle / "runs" / "done.parquet", "done", "completed")
    run_table(bundle / "runs" / "half.parquet", "half", "interrupted")
    (bundle / "checkpoints").mkdir()
    (bundle / "checkpoints" / "half.pt").write_bytes(b"state" * 1000)
    (bundle / "checkpoints" / "huge.pt").write_bytes(os.urandom(300_000))
    future = os.stat(bundle).st_mtime + 3600
    for name in ("runs/done.parquet", "runs/half.parquet", "checkpoints/half.pt", "checkpoints/huge.pt"):
        os.utime(bundle / name, (future, future))
    out = tmp_path / "out"
    env = {"SITTING_WORK": "none", "SITTING_HOME": str(tmp_path / "p"), "OUT": str(out)}
    done = sitting(
        far, "step", "1", HARNESS_DATA_ROOT=str(tmp_path), SITTING_RETURN_LIMIT_BYTES=str(2**20 + 150_000), **env
    )
    assert "1 new checkpoints do not fit" in done.stdout

    mine = here / "reproduction" / "h200"
    run_table(mine / "runs" / "done.parquet", "done", "interrupted")
    (mine / "checkpoints").mkdir()
    (mine / "checkpoints" / "done.pt").write_bytes(b"old")  # its run has completed there
    (mine / "checkpoints" / "other.pt").write_bytes(b"keep")  # a run not reached this sitting
    landed = tmp_path / "landed"
    shutil.copytree(out, landed)
    for path in landed.iterdir():
        path.chmod(0o444)  # the tool hands the files over read-only
    done = sitting(here, "unpack", str(landed))
    assert sorted(p.name for p in (mine / "runs").iterdir()) == ["done.parquet", "half.parquet"]
    assert pq.read_table(mine / "runs" / "done.parquet").column("status").to_pylist() == ["completed"]
    assert sorted(p.name for p in (mine / "checkpoints").iterdir()) == ["half.pt", "other.pt"]
    assert (mine / "checkpoints" / "half.pt").read_bytes() == b"state" * 1000
    sent = here / "results" / "sitting" / "step-1"
    assert {"tasks.tsv", "machine.txt", "step-1.log", "checkpoints-left-behind.txt"} <= {p.name for p in sent.iterdir()}
    assert "checkpoints/huge.pt" in done.stdout
    assert "2 of unfinished runs kept (never committed), 1 of completed runs removed" in done.stdout
    assert "git add reproduction/h200" in done.stdout


def test_unpack_names_a_piece_that_did_not_come_back(tmp_path):
    here = checkout(tmp_path / "here")
    landed = tmp_path / "landed"
    landed.mkdir()
    (landed / "sitting-2.md5").write_text("0123 100 2\n")
    (landed / "sitting-2.tar.gz.00").write_bytes(b"x" * 50)
    done = sitting(here, "unpack", str(landed), check=False)
    assert done.returncode == 1 and "call 2 sent 2 pieces, 1 are in" in done.stdout


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python3: the project counts as installed from the current checkout, torch sees the GPU
# named by FAKE_GPU (none when it is empty); the rest is logged.
case "$1" in
    -c)
        [[ $2 == *harness.__file__* ]] && echo "$PWD/harness/__init__.py"
        [[ $2 == *torch.cuda* && -n ${FAKE_GPU:-} ]] && echo "$FAKE_GPU"
        exit 0
        ;;
    -) cat >/dev/null ;;
    *) echo "python $*" >>"$FAKE_LOG" ;;
esac
"""

FAKE_HARNESS = """#!/usr/bin/env bash
# Stands in for harness: logs its arguments; `sweep sweeps/table1.toml` runs until it gets SIGTERM.
echo "harness $*" >>"$FAKE_LOG"
if [[ $1 == sweep && $2 == sweeps/table1.toml ]]; then
    trap 'echo "table1 interrupted" >>"$FAKE_LOG"; exit 143' TERM
    sleep 60 &
    wait
fi
"""

TASKS = [
    "gpu-tests",
    "table3-mnist",
    "gpu-kernel-solver",
    "pack-throughput",
    "ddp-overhead",
    "design-card",
    "sweep-table1",
    "sweep-fig2b",
    "sweep-fig1a",
    "sweep-fig1bc",
    "table3-cifar",
]


@pytest.fixture
def box(tmp_path):
    """One machine with the data: a checkout with the benchmarks' scripts, stand-ins for python and
    harness, and the environment that runs them; returns the checkout, that environment and the log."""
    far = checkout(tmp_path / "box", git=False)
    shutil.copytree(REPOSITORY / "benchmarks", far / "benchmarks", ignore=shutil.ignore_patterns("*.py"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("python", FAKE_PYTHON), ("harness", FAKE_HARNESS)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    data = tmp_path / "data"
    (data / "MNIST" / "raw").mkdir(parents=True)
    (data / "cifar10").mkdir()
    (data / "cifar10" / "train.npz").touch()
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SITTING_PYTHON": str(bin_dir / "python"),
        "HARNESS_DATA_ROOT": str(data),
        "SITTING_MIN_TASK_S": "1",
        "SITTING_SKIP": "gpu-kernel-solver",
        "FAKE_LOG": str(log),
    }
    return far, env, log


def tasks_run(far: Path) -> list[str]:
    return (far / "results" / "sitting" / "step-all" / "tasks.tsv").read_text().splitlines()[1:]


def test_one_machine_runs_every_task_in_order_and_stops_the_sweeps_at_their_budget(box):
    """`step all` with stand-ins for python and harness: every task in order, a skipped one noted,
    the sweep running at the deadline stopped with SIGTERM and the ones after it not started."""
    far, env, log = box
    done = sitting(far, "step", "all", SITTING_BUDGET_S="3", **env)
    tasks = tasks_run(far)
    assert [line.split("\t")[0] for line in tasks] == TASKS
    assert tasks[2].endswith("skipped (SITTING_SKIP)")
    assert tasks[6].split("\t")[1] == "124" and "stopped at its time limit" in tasks[6]
    assert all(line.endswith("not started: the time budget was spent") for line in tasks[7:])
    calls = log.read_text()
    assert "python -m pytest -m gpu -q -rA" in calls
    assert (
        "harness kernel --dataset mnist --features none --bandwidth 0.02 --device cuda --results-dir reproduction/h200"
        in calls
    )
    assert (
        "python benchmarks/pack_throughput.py --device cuda --models mlp_1x512 alexnet inception --packs 1 4 16 64"
        in calls
    )
    assert "python benchmarks/ddp_allreduce.py --device cuda" in calls
    assert (
        "python -m torch.distributed.run --standalone --nproc-per-node 1 benchmarks/ddp_allreduce.py --device cuda"
        in calls
    )
    assert "harness run --plugin alexnet --corruption shuffled_pixels --device cuda --results-dir" in calls
    assert "harness sweep sweeps/table1.toml --results-dir reproduction/h200 --device cuda --pack 16" in calls
    assert "table1 interrupted" in calls and "fig2b" not in calls and "cifar10" not in calls
    assert "time budget spent during table1" in done.stdout


def test_reproduce_gpu_runs_the_tasks_of_step_all_in_the_same_order(box):
    """scripts/reproduce-gpu.sh SECONDS is `step all` with the sweeps' budget: the same tasks in the same
    order and the same commands; then it says where the results are and what to commit."""
    far, env, log = box
    sitting(far, "step", "all", SITTING_BUDGET_S="3", **env)
    by_step_all = [line.split("\t")[:2] for line in tasks_run(far)]
    calls = log.read_text().splitlines()
    log.unlink()

    env = {**env, "PYTHON": env.pop("SITTING_PYTHON"), "FAKE_GPU": "NVIDIA H200"}
    done = sitting(far, "3", script="reproduce-gpu.sh", **env)
    assert [line.split("\t")[:2] for line in tasks_run(far)] == by_step_all
    assert [line.split("\t")[0] for line in tasks_run(far)] == TASKS
    assert log.read_text().splitlines() == calls
    assert "GPU: NVIDIA H200" in done.stdout and "sweeps: for at most 3 s" in done.stdout
    assert "  reproduction/h200/    the bundle" in done.stdout
    assert "  results/sitting/step-all/    logs and benchmark outputs" in done.stdout
    assert "Stopped at their time limit or not started: sweep-table1 sweep-fig2b" in done.stdout
    assert "git add reproduction/h200 docs/reproduction.md && git commit" in done.stdout
    assert done.stdout.index("tasks of call all") < done.stdout.index("To commit")  # the log first, then the summary


def test_reproduce_gpu_refuses_without_the_data(box, tmp_path):
    far, env, log = box
    env = {**env, "PYTHON": env["SITTING_PYTHON"], "FAKE_GPU": "NVIDIA H200"}
    del env["HARNESS_DATA_ROOT"]
    for data in ({}, {"HARNESS_DATA_ROOT": str(tmp_path / "nowhere")}):
        done = sitting(far, check=False, script="reproduce-gpu.sh", **env, **data)
        named = f"={data['HARNESS_DATA_ROOT']}" if data else ""
        assert done.returncode == 1
        assert done.stdout.splitlines() == [
            f"reproduce-gpu: error: HARNESS_DATA_ROOT{named} must name the folder holding MNIST/raw/ and "
            "cifar10/train.npz (or cifar-10-batches-py/)"
        ]
    assert not log.exists() and not (far / "results").exists()


def test_reproduce_gpu_refuses_without_a_gpu(box):
    far, env, log = box
    done = sitting(far, check=False, script="reproduce-gpu.sh", PYTHON=env["SITTING_PYTHON"], FAKE_GPU="", **env)
    assert done.returncode == 1
    assert len(done.stdout.splitlines()) == 1 and done.stdout.startswith("reproduce-gpu: error: no CUDA GPU: ")
    assert not log.exists() and not (far / "results").exists()


def test_reproduce_gpu_explains_itself(box):
    far, _, _ = box
    done = sitting(far, "--help", script="reproduce-gpu.sh")
    assert done.stdout.startswith("The paper at full scale on one machine with a CUDA GPU")
    assert "HARNESS_DATA_ROOT=/path/to/data scripts/reproduce-gpu.sh [SECONDS]" in done.stdout
    assert "reproduction/h200" in done.stdout and "git add reproduction/h200" in done.stdout
    bad = sitting(far, "soon", check=False, script="reproduce-gpu.sh")
    assert bad.returncode == 1 and "not 'soon'" in bad.stdout


def test_lighten_takes_the_bundles_out_of_the_tree_and_unpack_puts_them_back(tmp_path):
    here = checkout(tmp_path / "here")
    kept = ["reproduction/h200/bundle.toml", "reproduction/h200/runs/a.parquet"]
    taken = ["reproduction/h200/examples/a.parquet", "reproduction/cpu/runs/b.parquet", "reproduction/cpu/bundle.toml"]
    for name in kept + taken:
        (here / name).parent.mkdir(parents=True, exist_ok=True)
        (here / name).write_bytes(b"y" * 3000)
    git = ["git", "-C", str(here), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bundles"], check=True)
    full = tree_bytes(here)

    sitting(here, "lighten")
    assert tree_bytes(here) == full - 3 * 3000
    assert all((here / name).exists() for name in kept) and not any((here / name).exists() for name in taken)
    assert "already lightened" in sitting(here, "lighten", check=False).stdout

    returned = tmp_path / "returned"
    returned.mkdir()
    sitting(here, "unpack", str(returned))
    assert all((here / name).read_bytes() == b"y" * 3000 for name in kept + taken)
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
    assert status == ""
