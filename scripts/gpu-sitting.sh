#!/usr/bin/env bash
# A GPU sitting: the project's GPU work on a borrowed one-GPU machine that is reached call by call,
# each call copying this checkout (plus a few named ignored paths, 64 MiB in all) there, running one
# command, and bringing back what the command wrote under $OUT. The data (MNIST and CIFAR-10) do not
# fit in one call, so they travel in parts, one per call; see docs/gpu-sitting.md.
#
# Usage:
#   scripts/gpu-sitting.sh lighten              here, first: take the other bundles' tables (and the sitting
#                                               bundle's epochs and examples) out of the tree until unpack
#                                               puts them back, so that each call carries more data
#   scripts/gpu-sitting.sh prepare [DATA_ROOT]  here, on the machine with the data (default $HARNESS_DATA_ROOT):
#                                               pack it into .sitting/part-01.. sized to what one call carries,
#                                               and print every call's command and carry list
#   scripts/gpu-sitting.sh step K               there, once per call, K = 1..N in order: receive part K (and,
#                                               once all have come, check and unpack the data), then call K's work
#   scripts/gpu-sitting.sh step all             one machine with a GPU and the data (HARNESS_DATA_ROOT): every
#                                               call's work in order, results in place, nothing to pack or unpack
#                                               (what scripts/reproduce-gpu.sh runs, after checking the data and GPU)
#   scripts/gpu-sitting.sh sweeps [BUNDLE]      the full-scale sweeps, then Table 3 on CIFAR-10, into BUNDLE
#                                               (default reproduction/h200) until SITTING_BUDGET_S is spent
#   scripts/gpu-sitting.sh unpack DIR           here, after the calls: put back what lighten took out, put what
#                                               came back (every call's files, anywhere under DIR) into the
#                                               checkout and say what to commit
#
# Call K's work: call 1 the GPU tests, Table 3 on MNIST and the GPU kernel benchmark; call 2 the packed
# training throughput benchmark and the data-parallel overhead on one GPU (call 1 when there are fewer
# than 3 calls); the last call the sweeps.
#
# Settings (environment), with their defaults:
#   SITTING_CALL_LIMIT_BYTES=67108864  what one call may carry: the tree and its carried paths (64 MiB)
#   SITTING_MARGIN_BYTES=2097152       kept free in every call (the manifest, files added meanwhile)
#   SITTING_HOME=$HOME/sitting         there: the folder that outlives the checkout between calls
#   SITTING_BUNDLE=reproduction/h200   the results bundle the sweeps and Table 3 write into
#   SITTING_WORK=all                   none: only receive the data and send back the logs (no GPU needed)
#   SITTING_DEVICE_S=840               device time of the whole sitting, start-up included (0: no limit)
#   SITTING_STARTUP_S=120              of which the machine's start-up before call 1
#   SITTING_CALL_S=510                 work time of one call (the tool stops a call at 600 s; 0: no limit)
#   SITTING_SWEEP_MIN_S=300            kept for the last call's sweeps by the calls before it
#   SITTING_BUDGET_S=420               the sweeps' wall time (0: until every sweep is done; the default
#                                      of the `sweeps` command)
#   SITTING_SWEEP_OPTIONS="--pack 16"  added to every `harness sweep` of the sitting
#   SITTING_TESTS_S=90 SITTING_MNIST_S=120 SITTING_KERNEL_BENCH_S=90 SITTING_THROUGHPUT_S=180
#   SITTING_DESIGN_CARD_S=90 SITTING_DDP_OVERHEAD_S=60
#                                      the longest each of the other tasks may run
#   SITTING_SKIP=""                    tasks not to run: gpu-tests table3-mnist gpu-kernel-solver
#                                      pack-throughput ddp-overhead design-card sweeps
#   SITTING_MIN_TASK_S=20              a task with less time left than this is not started
#   SITTING_KERNEL_BENCH_ARGS=""       added to benchmarks/gpu_kernel_solver.py
#   SITTING_THROUGHPUT_ARGS="--device cuda --models mlp_1x512 alexnet inception --packs 1 4 16 64
#                            --alone-runs 4 --options tf32 bf16 bf16+channels_last compile"
#                                      benchmarks/pack_throughput.py's arguments
#   OUT                                there: the folder whose files come back ($SITTING_HOME/out-K if unset)
set -euo pipefail

SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SCRIPT")/.." && pwd)
cd "$ROOT"

MIB=1048576
CALL_LIMIT=${SITTING_CALL_LIMIT_BYTES:-$((64 * MIB))}
MARGIN=${SITTING_MARGIN_BYTES:-$((2 * MIB))}
HOME_DIR=${SITTING_HOME:-${HOME:-/root}/sitting}
BUNDLE=${SITTING_BUNDLE:-reproduction/h200}
WORK_MODE=${SITTING_WORK:-all}
DEVICE_S=${SITTING_DEVICE_S:-840}
STARTUP_S=${SITTING_STARTUP_S:-120}
CALL_S=${SITTING_CALL_S:-510}
SWEEP_MIN_S=${SITTING_SWEEP_MIN_S:-300}
BUDGET_S=${SITTING_BUDGET_S:-420}
CLOSE_S=60   # after the last task: a SIGTERM-ed run's 30 s to checkpoint, packing, sending back
CARRY_S=40   # what a later call costs at least: copying 64 MiB there, installing, sending back
MIN_TASK_S=${SITTING_MIN_TASK_S:-20} # a task with less time left than this is not started
PIECE_BYTES=$((15 * MIB))
OUT_FILES=8  # at most this many files come back from one call, 64 MiB in all
PY=${SITTING_PYTHON:-python3}
# The paper's data, as HARNESS_DATA_ROOT holds it: MNIST first, so that it arrives with the first part.
MNIST_FILES=(MNIST/raw/train-images-idx3-ubyte MNIST/raw/train-labels-idx1-ubyte
    MNIST/raw/t10k-images-idx3-ubyte MNIST/raw/t10k-labels-idx1-ubyte)
CIFAR_FILES=(cifar10/train.npz cifar10/test.npz)
SWEEPS=(table1 fig2b fig1a fig1bc)

die() {
    echo "gpu-sitting: error: $*" >&2
    exit 1
}
say() { echo "gpu-sitting: $*"; }
now() { date +%s; }
part_name() { printf 'part-%02d' "$1"; }
mib() { awk -v b="$1" 'BEGIN { if (b < 1048576) printf "%.1f KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'; }
md5_of() { md5sum | cut -d' ' -f1; }
file_bytes() { stat -c %s -- "$1"; }
manifest_get() { awk -v key="$1" '$1 == key { print $2; exit }' "$2"; }
is_count() { [[ $1 =~ ^[0-9]+$ ]]; }

# --- here: prepare -------------------------------------------------------------------------------

# Bytes of what a call copies without being asked: tracked files and untracked ones git does not ignore.
tree_bytes() { # (a tracked file deleted meanwhile counts nothing)
    (
        set +o pipefail
        git ls-files -co --exclude-standard -z | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
    )
}

# Bytes of the bundle's checkpoints (git-ignored), which the last call carries so that its runs resume.
checkpoint_bytes() {
    if [[ -d $BUNDLE/checkpoints ]]; then
        find "$BUNDLE/checkpoints" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
    else
        echo 0
    fi
}

call_work() { # K N: what call K of N does
    local k=$1 n=$2 work=()
    ((k == 1)) && work+=("GPU tests, Table 3 on MNIST, GPU kernel benchmark")
    ((k == (n >= 3 ? 2 : 1))) && work+=("training throughput benchmark, data-parallel overhead on one GPU")
    ((k == n)) && work+=("the design card's run, then the sweeps into $BUNDLE until the time budget is spent, then Table 3 on CIFAR-10")
    ((${#work[@]})) || work+=("nothing: it carries its part")
    local IFS=";"
    echo "${work[*]}"
}

# .sitting/ ignores itself (a '*' .gitignore inside it): it never travels unless carried and is
# never committed, in any checkout, without touching the repository's shared git folder.
make_sitting_folder() {
    mkdir -p .sitting
    printf '# made by scripts/gpu-sitting.sh: the data of a GPU sitting, never committed\n*\n' >.sitting/.gitignore
}

# The calls need the code, the sweep specs and, of the bundles, only what tells a sweep which runs
# are done: $BUNDLE's runs tables. The rest of reproduction/ (about 20 MB, growing with every bundle)
# leaves the index and the tree until unpack restores it from HEAD; .sitting/removed lists it.
lighten() {
    git rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "$ROOT is not a git checkout"
    [[ ! -s .sitting/removed ]] || die "already lightened: unpack (or restore) puts the files back first"
    [[ -z $(git status --porcelain -- reproduction) ]] ||
        die "reproduction/ has changes not committed: commit them first (lighten takes its files out of the tree)"
    make_sitting_folder
    git ls-files -z -- reproduction ":!$BUNDLE/bundle.toml" ":!$BUNDLE/runs" ":!$BUNDLE/kernel_runs" >.sitting/removed
    local count
    count=$(tr -cd '\0' <.sitting/removed | wc -c)
    ((count > 0)) || { rm .sitting/removed; say "nothing to take out"; return 0; }
    git rm -q --pathspec-from-file=.sitting/removed --pathspec-file-nul
    say "took $count files out of the tree (listed in .sitting/removed); unpack puts them back (or: $0 restore)"
}

restore() {
    [[ -s .sitting/removed ]] || return 0
    git restore --source=HEAD --staged --worktree --pathspec-from-file=.sitting/removed --pathspec-file-nul
    say "put back the $(tr -cd '\0' <.sitting/removed | wc -c) files lighten took out"
    rm .sitting/removed
}

prepare() {
    local data_root=${1:-${HARNESS_DATA_ROOT:-}}
    [[ -n $data_root ]] || die "prepare needs the data folder: give it, or set HARNESS_DATA_ROOT"
    [[ -d $data_root ]] || die "no folder $data_root"
    local f
    for f in "${MNIST_FILES[@]}" "${CIFAR_FILES[@]}"; do
        [[ -f $data_root/$f ]] || die "$data_root/$f is missing: the data folder must hold $(printf '%s ' "${MNIST_FILES[@]}" "${CIFAR_FILES[@]}")"
    done
    git rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "$ROOT is not a git checkout: prepare measures what a call copies with git"

    make_sitting_folder
    rm -f .sitting/part-* .sitting/manifest .sitting/mnist.tar.gz .sitting/archive

    local tree ckpt room
    tree=$(tree_bytes)
    if [[ ! -s .sitting/removed ]] && ((tree > 8 * MIB)); then
        say "the tree is $(mib "$tree"): \`$0 lighten\` first takes the bundles' tables out of it for the sitting"
    fi
    ckpt=$(checkpoint_bytes)
    room=$((CALL_LIMIT - tree - MARGIN))
    ((room > 0)) || die "the tree alone is $(mib "$tree"): no room for data under the call limit of $(mib "$CALL_LIMIT")"
    ((ckpt < room)) || die "$BUNDLE/checkpoints ($(mib "$ckpt")) does not fit in one call beside the tree ($(mib "$tree")): delete the checkpoints of runs you can start over"

    say "packing $data_root (MNIST, then CIFAR-10) into .sitting/"
    # Two gzip'd tar archives back to back: MNIST alone can be unpacked from the first bytes, and
    # `tar -xzif` unpacks the whole.
    tar -C "$data_root" -cf - "${MNIST_FILES[@]}" | gzip -9 -n >.sitting/archive
    local mnist_bytes mnist_md5
    mnist_bytes=$(file_bytes .sitting/archive)
    mnist_md5=$(md5_of <.sitting/archive)
    ((mnist_bytes <= room)) || die "MNIST packed is $(mib "$mnist_bytes") but a call carries only $(mib "$room") of data beside the tree ($(mib "$tree")): it cannot arrive with the first call"
    tar -C "$data_root" -cf - "${CIFAR_FILES[@]}" | gzip -9 -n >>.sitting/archive  # (the npz files are compressed already)
    local total archive_md5 calls
    total=$(file_bytes .sitting/archive)
    archive_md5=$(md5_of <.sitting/archive)
    # Parts 1..N-1 fill a call; the last part leaves room for the checkpoints the last call carries.
    calls=$(((total + ckpt + room - 1) / room))
    split -b "$room" -d -a 2 --numeric-suffixes=1 .sitting/archive .sitting/part-
    rm .sitting/archive
    [[ -f .sitting/$(part_name "$calls") ]] || : >".sitting/$(part_name "$calls")"

    {
        echo "# a GPU sitting's data: written by scripts/gpu-sitting.sh prepare; every call carries it"
        echo "format 1"
        echo "archive_md5 $archive_md5"
        echo "archive_bytes $total"
        echo "mnist_bytes $mnist_bytes"
        echo "mnist_md5 $mnist_md5"
        echo "parts $calls"
        local k name
        for ((k = 1; k <= calls; k++)); do
            name=$(part_name "$k")
            echo "$name $(file_bytes ".sitting/$name") $(md5_of <".sitting/$name")"
        done
    } >.sitting/manifest

    echo
    echo "What travels without being asked (tracked and unignored files): $(mib "$tree") ($tree bytes)"
    echo "Call limit $(mib "$CALL_LIMIT"), margin $(mib "$MARGIN"): $(mib "$room") ($room bytes) of data per call"
    echo "Data: $(mib "$total") packed (MNIST $(mib "$mnist_bytes"), in part 01), md5 $archive_md5"
    ((ckpt > 0)) && echo "Checkpoints of unfinished runs, carried by the last call: $(mib "$ckpt") ($ckpt bytes)"
    echo "To spare: $(mib $((calls * room - ckpt - total))) ($((calls * room - ckpt - total)) bytes) more in the tree, the data or the checkpoints need another call"
    echo
    echo "$calls calls, back to back (the machine forgets everything after about 30 s idle):"
    local k name carry load
    for ((k = 1; k <= calls; k++)); do
        name=$(part_name "$k")
        carry="\".sitting/$name\", \".sitting/manifest\""
        load=$((tree + $(file_bytes ".sitting/$name") + $(file_bytes .sitting/manifest)))
        if ((k == calls && ckpt > 0)); then
            carry+=", \"$BUNDLE/checkpoints\""
            load=$((load + ckpt))
        fi
        echo
        echo "call $k of $calls: $(call_work "$k" "$calls")"
        echo "  command: bash scripts/gpu-sitting.sh step $k"
        echo "  carry:   [$carry]"
        echo "  size:    $(mib "$load") ($load bytes) of $(mib "$CALL_LIMIT"); timeout 600 s"
    done
    echo
    echo "Between calls, only keep each call's returned files (the machine forgets the parts after about 30 s idle);"
    echo "after the last: bash scripts/gpu-sitting.sh unpack FOLDER (every call's returned files, anywhere under it)."
    echo "Afterwards: rm -rf .sitting (the parts are $(mib "$total"))."
}

# --- there: receive the data ---------------------------------------------------------------------

# Move the carried parts and manifest out of the checkout into $SITTING_HOME, check each part, and
# unpack MNIST as soon as its bytes are all there and everything once every part is.
receive() {
    local parts=$HOME_DIR/parts data=$HOME_DIR/data
    mkdir -p "$parts" "$data"
    if [[ -f .sitting/manifest ]]; then
        if [[ -f $parts/manifest ]] && ! cmp -s .sitting/manifest "$parts/manifest"; then
            say "another sitting's manifest: clearing $parts and $data"
            rm -rf "$parts" "$data"
            mkdir -p "$parts" "$data"
        fi
        mv -f .sitting/manifest "$parts/manifest"
    fi
    [[ -f $parts/manifest ]] || die "no manifest: carry .sitting/manifest with every call (made by \`prepare\`)"
    local manifest=$parts/manifest n f name
    n=$(manifest_get parts "$manifest")
    is_count "$n" || die "$manifest says no number of parts"
    for f in .sitting/part-*; do
        [[ -e $f ]] || continue
        mv -f "$f" "$parts/"
        rm -f "$parts/$(basename "$f").ok"
    done

    local k expected actual present=() missing=()
    for ((k = 1; k <= n; k++)); do
        name=$(part_name "$k")
        if [[ ! -f $parts/$name ]]; then
            missing+=("$name")
            continue
        fi
        if [[ ! -f $parts/$name.ok ]]; then
            expected=$(manifest_get "$name" "$manifest")
            actual=$(file_bytes "$parts/$name")
            [[ $actual == "$expected" ]] || die "$name has $actual bytes, the manifest says $expected: it was cut short on the way; carry it again"
            expected=$(awk -v key="$name" '$1 == key { print $3; exit }' "$manifest")
            actual=$(md5_of <"$parts/$name")
            [[ $actual == "$expected" ]] || die "$name is corrupted: md5 $actual, the manifest says $expected; carry it again"
            touch "$parts/$name.ok"
        fi
        present+=("$parts/$name")
    done
    say "parts here: ${#present[@]} of $n${missing[*]:+ (still to come: ${missing[*]})}"

    local mnist_bytes have=0
    mnist_bytes=$(manifest_get mnist_bytes "$manifest")
    if [[ ! -f $data/.mnist-complete ]]; then
        local prefix=()
        for ((k = 1; k <= n; k++)); do
            name=$parts/$(part_name "$k")
            [[ -f $name.ok ]] || break
            prefix+=("$name")
            have=$((have + $(file_bytes "$name")))
        done
        if ((have >= mnist_bytes)); then
            actual=$( (set +o pipefail && cat "${prefix[@]}" | head -c "$mnist_bytes") | md5_of)
            expected=$(manifest_get mnist_md5 "$manifest")
            [[ $actual == "$expected" ]] || die "MNIST's bytes are corrupted: md5 $actual, the manifest says $expected"
            (set +o pipefail && cat "${prefix[@]}" | head -c "$mnist_bytes") | tar -xzf - -C "$data" --no-same-owner
            touch "$data/.mnist-complete"
            say "MNIST unpacked into $data"
        fi
    fi
    if [[ ! -f $data/.complete ]] && ((${#missing[@]} == 0)); then
        actual=$(cat "${present[@]}" | md5_of)
        expected=$(manifest_get archive_md5 "$manifest")
        [[ $actual == "$expected" ]] || die "the joined parts are corrupted: md5 $actual, the manifest says $expected; run prepare again"
        cat "${present[@]}" | tail -c +$((mnist_bytes + 1)) | tar -xzf - -C "$data" --no-same-owner
        touch "$data/.complete"
        say "all the data checked (md5 $actual) and unpacked into $data"
    fi
    export HARNESS_DATA_ROOT=$data
}

# --- there: time ---------------------------------------------------------------------------------

# The sitting's clock starts with call 1 (recorded in $SITTING_HOME) after the machine's start-up.
# A task may run for its own cap, what is left of this call, and what the sitting can spare: before
# the last call, the last call's sweeps and every later call's overhead stay reserved.
call_deadline=0
session_deadline=0
reserve=0
start_clocks() { # K N
    local k=$1 n=$2 started
    ((CALL_S > 0)) && call_deadline=$(($(now) + CALL_S))
    if ((DEVICE_S > 0)); then
        if ((k == 1)) || [[ ! -f $HOME_DIR/clock ]]; then now >"$HOME_DIR/clock"; fi
        started=$(cat "$HOME_DIR/clock")
        session_deadline=$((started + DEVICE_S - STARTUP_S - CLOSE_S))
        ((k < n)) && reserve=$(((n - k) * CARRY_S + SWEEP_MIN_S))
        say "sitting clock: $(($(now) - started)) s since call 1 began; $((session_deadline - reserve - $(now))) s for this call's work"
    fi
    return 0
}

allowance() { # CAP (0: none): the seconds a task starting now may run
    local cap=$1 left
    ((cap > 0)) || cap=1000000000
    if ((call_deadline > 0)); then
        left=$((call_deadline - $(now)))
        ((left < cap)) && cap=$left
    fi
    if ((session_deadline > 0)); then
        left=$((session_deadline - reserve - $(now)))
        ((left < cap)) && cap=$left
    fi
    echo $((cap < 0 ? 0 : cap))
}

# --- there: the work -----------------------------------------------------------------------------

work_dir=""
tasks_file=/dev/null
note() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$tasks_file"; }

run_for() { # NAME SECONDS COMMAND...: run it, stopped with SIGTERM after SECONDS; its output also to NAME.txt
    local name=$1 seconds=$2 rc started output=/dev/null
    shift 2
    [[ -n $work_dir ]] && output=$work_dir/$name.txt
    if ((seconds < MIN_TASK_S)); then
        say "$name: not started, $seconds s left"
        note "$name" - 0 "not started: $seconds s left"
        return 0
    fi
    say "$name: up to $seconds s: $*"
    started=$(now)
    set +e
    timeout --signal=TERM --kill-after=30 "$seconds" "$@" 2>&1 | tee "$output"
    rc=${PIPESTATUS[0]}
    set -e
    case $rc in
        0) note "$name" "$rc" "$(($(now) - started))" "done" ;;
        124 | 137) note "$name" "$rc" "$(($(now) - started))" "stopped at its time limit ($seconds s)" ;;
        *) note "$name" "$rc" "$(($(now) - started))" "failed" ;;
    esac
    return "$rc"
}

skipped() { # NAME: whether SITTING_SKIP names the task (and if so, say so)
    [[ " ${SITTING_SKIP:-} " == *" $1 "* ]] || return 1
    note "$1" - 0 "skipped (SITTING_SKIP)"
}

run_task() { # NAME CAP COMMAND...
    local name=$1 cap=$2
    shift 2
    skipped "$name" && return 0
    run_for "$name" "$(allowance "$cap")" "$@" || true
}

# The full-scale sweeps in the order that matters most, then Table 3 on CIFAR-10, until the deadline
# (0: none). Each sweep skips what the bundle already holds; the one running at the deadline gets
# SIGTERM, and harness stores its unfinished runs as interrupted with their checkpoints, so the next
# sitting resumes them.
run_sweeps() { # BUNDLE SECONDS
    local bundle=$1 seconds=$2 deadline=0 spec rc left options stopped=""
    read -r -a options <<<"${SITTING_SWEEP_OPTIONS---pack 16}"
    ((seconds > 0)) && deadline=$(($(now) + seconds))
    mkdir -p "$bundle"
    for spec in "${SWEEPS[@]/#/sweep-}" table3-cifar; do
        if [[ -n $stopped ]]; then
            note "$spec" - 0 "not started: the time budget was spent"
            continue
        fi
        left=1000000000
        ((deadline > 0)) && left=$((deadline - $(now)))
        rc=0
        if [[ $spec == table3-cifar ]]; then
            run_for "$spec" "$left" bash benchmarks/table3_cifar_gpu.sh "$bundle" 50000 10000 || rc=$?
        else
            run_for "$spec" "$left" harness sweep "sweeps/${spec#sweep-}.toml" --results-dir "$bundle" --device cuda "${options[@]}" || rc=$?
        fi
        if ((left < MIN_TASK_S)); then
            say "time budget spent: $spec and what follows it not started"
            stopped=1
        elif ((rc == 124 || rc == 137)); then
            say "time budget spent during ${spec#sweep-}: its unfinished runs are stored as interrupted with their checkpoints and resume next sitting; what follows it not started"
            stopped=1
        fi
    done
    return 0
}

use_harness() { # PATH with the harness command: the install's scripts folder, or this checkout's .venv
    local bin
    for bin in "$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
        "$("$PY" -m site --user-base 2>/dev/null)/bin" "$ROOT/.venv/bin"; do
        [[ -d $bin ]] && PATH=$bin:$PATH
    done
    export PATH
}

install() { # the project from this checkout (the checkout's path changes from call to call)
    local where
    where=$("$PY" -c 'import harness; print(harness.__file__)' 2>/dev/null || true)
    if [[ $where != "$ROOT/harness/__init__.py" ]]; then
        say "installing the project from $ROOT"
        "$PY" -m pip install -q --no-deps --no-build-isolation -e . || die "could not install the project from $ROOT"
    fi
    use_harness
    command -v harness >/dev/null || die "installed, but no harness command on PATH ($PATH)"
}

machine_info() {
    echo "# $(date -u +%FT%TZ) $(hostname) $ROOT"
    echo "## nvidia-smi"
    if command -v nvidia-smi >/dev/null; then nvidia-smi 2>&1 || true; else echo "(no nvidia-smi)"; fi
    echo "## lscpu"
    if command -v lscpu >/dev/null; then
        lscpu | grep -E '^(Architecture|CPU\(s\)|Model name|Thread|Core|Socket|NUMA node\(s\)|L3)' || true
        echo "AVX-512: $(grep -q avx512f /proc/cpuinfo && echo yes || echo no)"
    else
        echo "(no lscpu)"
    fi
    echo "memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)"
    if [[ $WORK_MODE != none ]]; then
        echo "## versions"
        "$PY" - <<'PY' 2>&1 || true
import importlib, sys
print("python", sys.version.split()[0])
for name in ("torch", "cupy", "torchvision", "timm", "pyarrow", "pluggy", "typer", "rich", "pytest"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as error:  # not installed there, or broken
        print(name, "not importable:", type(error).__name__)
try:
    import torch
    print("cuda", torch.version.cuda, "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
except Exception:
    pass
PY
    fi
}

do_work() { # K N
    local k=$1 n=$2 first_throughput=$(($2 >= 3 ? 2 : 1))
    export COLUMNS=160 # rich's tables, written to a file, at a readable width
    if ((k == 1)); then
        if "$PY" -c 'import pytest' 2>/dev/null; then
            run_task gpu-tests "${SITTING_TESTS_S:-90}" "$PY" -m pytest -m gpu -q -rA -p no:cacheprovider \
                --junitxml="$work_dir/gpu-tests.xml"
        else
            note gpu-tests - 0 "not run: no pytest there"
        fi
        if [[ -d $HARNESS_DATA_ROOT/MNIST/raw ]]; then
            run_task table3-mnist "${SITTING_MNIST_S:-120}" bash benchmarks/table3_mnist_gpu.sh "$BUNDLE"
            local bench=()
            read -r -a bench <<<"${SITTING_KERNEL_BENCH_ARGS:-}"
            run_task gpu-kernel-solver "${SITTING_KERNEL_BENCH_S:-90}" "$PY" benchmarks/gpu_kernel_solver.py \
                --out "$work_dir/gpu-kernel-solver" "${bench[@]}"
        else
            note table3-mnist - 0 "not run: MNIST has not arrived"
        fi
    fi
    if ((k == first_throughput)); then
        local args=()
        read -r -a args <<<"${SITTING_THROUGHPUT_ARGS---device cuda --models mlp_1x512 alexnet inception --packs 1 4 16 64 --alone-runs 4 --options tf32 bf16 bf16+channels_last compile}"
        run_task pack-throughput "${SITTING_THROUGHPUT_S:-180}" "$PY" benchmarks/pack_throughput.py "${args[@]}"
        # A data-parallel run of world size 1 (nccl) against a plain one (goal: at most 3 % slower).
        run_task ddp-overhead "${SITTING_DDP_OVERHEAD_S:-60}" bash benchmarks/ddp_overhead_gpu.sh "$PY"
    fi
    if ((k == n)); then
        if [[ -f $HARNESS_DATA_ROOT/cifar10/train.npz || -d $HARNESS_DATA_ROOT/cifar-10-batches-py ]]; then
            # The design card's command on all 50,000 images, timed from start-up (goal: 60 s on an H200).
            run_task design-card "${SITTING_DESIGN_CARD_S:-90}" harness run --plugin alexnet \
                --corruption shuffled_pixels --device cuda --results-dir "$work_dir/design-card"
            skipped sweeps || run_sweeps "$BUNDLE" "$(allowance "$BUDGET_S")"
        else
            note sweeps - 0 "not run: CIFAR-10 has not arrived"
        fi
    fi
}

# --- there: what comes back ----------------------------------------------------------------------

# $OUT gets step-K.log, machine-K.txt, sitting-K.md5 and sitting-K.tar.gz.NN (15 MiB pieces) holding
# this call's task outputs, the bundle's new and changed tables, and its new checkpoints (of runs
# stopped at the deadline) as far as they fit: the tables always come first.
pack_return() { # K
    local k=$1 stage base limit room size text
    stage=$(mktemp -d)
    mkdir -p "$stage/step-$k"
    cp -a "$work_dir/." "$stage/step-$k/"
    rm -f "$stage/step-$k/.started"
    cp "$OUT/step-$k.log" "$stage/step-$k/step.log" 2>/dev/null || true
    if [[ -d reports ]]; then cp -a reports "$stage/step-$k/reports"; fi
    if [[ -d $BUNDLE ]]; then
        mkdir -p "$stage/bundle"
        (cd "$BUNDLE" && find . -type f -newer "$work_dir/.started" ! -path './checkpoints/*' -print0 |
            xargs -0 -r cp --parents -t "$stage/bundle")
    fi
    base=$work_dir/return.tar.gz
    tar -czf "$base" -C "$stage" .
    # Room: 64 MiB for all of $OUT, less its text files (and 1 MiB for the log still growing), in at
    # most OUT_FILES - 3 pieces.
    limit=${SITTING_RETURN_LIMIT_BYTES:-$((64 * MIB))}
    text=$(find "$OUT" -maxdepth 1 -type f \( -name 'step-*.log' -o -name 'machine-*.txt' \) -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    room=$((limit - text - MIB))
    ((room <= (OUT_FILES - 3) * PIECE_BYTES)) || room=$(((OUT_FILES - 3) * PIECE_BYTES))
    size=$(file_bytes "$base")
    if [[ -d $BUNDLE/checkpoints ]]; then
        local kept=0 left=() path name ckpt
        while IFS= read -r -d '' path; do
            name=${path#"$BUNDLE"/}
            ckpt=$(file_bytes "$path")
            if ((size + kept + ckpt + 65536 <= room)); then
                mkdir -p "$stage/bundle/checkpoints"
                cp "$path" "$stage/bundle/$name"
                kept=$((kept + ckpt))
            else
                left+=("$name")
            fi
        done < <(find "$BUNDLE/checkpoints" -type f -newer "$work_dir/.started" -print0 | sort -z)
        if ((${#left[@]})); then
            printf '%s\n' "${left[@]}" >"$stage/step-$k/checkpoints-left-behind.txt"
            say "warning: ${#left[@]} new checkpoints do not fit in what comes back; those runs start over next sitting: ${left[*]}"
            tar -czf "$base" -C "$stage" .
        fi
        if ((kept > 0)); then
            tar -czf "$work_dir/full.tar.gz" -C "$stage" .
            if (($(file_bytes "$work_dir/full.tar.gz") <= room)); then
                mv "$work_dir/full.tar.gz" "$base"
            else
                rm "$work_dir/full.tar.gz"
                say "warning: with its checkpoints what comes back would not fit: the checkpoints stay behind"
            fi
        fi
    fi
    rm -rf "$stage"
    size=$(file_bytes "$base")
    ((size <= room)) || say "warning: what comes back is $(mib "$size"), over the $(mib "$room") that can: its last pieces will be left out"
    rm -f "$OUT/sitting-$k.tar.gz".*
    split -b "$PIECE_BYTES" -d -a 2 "$base" "$OUT/sitting-$k.tar.gz."
    local pieces
    pieces=$(find "$OUT" -maxdepth 1 -name "sitting-$k.tar.gz.*" | wc -l)
    echo "$(md5_of <"$base") $size $pieces" >"$OUT/sitting-$k.md5"
    rm -f "$base"
    say "sending back $(mib "$size") in $pieces pieces; $(find "$OUT" -maxdepth 1 -type f | wc -l) files in $OUT (at most $OUT_FILES come back)"
}

n_calls=1
step() {
    local k=${1:-}
    [[ -n $k ]] || die "step needs the call's number K (1..N) or 'all'"
    mkdir -p "$HOME_DIR"
    local all="" label=$k
    if [[ $k == all ]]; then
        all=1
        [[ -n ${HARNESS_DATA_ROOT:-} ]] || die "step all needs HARNESS_DATA_ROOT: the folder holding MNIST/raw and cifar10/"
        work_dir=$ROOT/results/sitting/step-all
        OUT=${OUT:-$work_dir}
        k=1
        DEVICE_S=0 CALL_S=0 # one machine of your own: only the tasks' own caps and SITTING_BUDGET_S
    else
        is_count "$k" && ((k >= 1)) || die "step takes a call's number (1..N) or 'all', not '$k'"
        work_dir=$HOME_DIR/step-$k
        OUT=${OUT:-$HOME_DIR/out-$k}
    fi
    rm -rf "$work_dir"
    mkdir -p "$work_dir" "$OUT"
    touch "$work_dir/.started"
    tasks_file=$work_dir/tasks.tsv
    printf 'task\trc\tseconds\tnote\n' >"$tasks_file"
    exec > >(tee -a "$OUT/step-$label.log") 2>&1
    local tee_pid=$!
    if [[ -z $all ]]; then
        # Whatever happens from here on, the log and what was made come back.
        trap 'rc=$?; trap - EXIT; pack_return '"$k"' || say "could not pack what comes back"; exec >&- 2>&-; wait '"$tee_pid"' 2>/dev/null; exit $rc' EXIT
    fi
    machine_info >"$OUT/machine-$label.txt" 2>&1 || true
    cp "$OUT/machine-$label.txt" "$work_dir/machine.txt"

    if [[ -n $all ]]; then
        n_calls=1
    else
        if [[ -f .sitting/manifest || -f $HOME_DIR/parts/manifest ]]; then
            receive
            n_calls=$(manifest_get parts "$HOME_DIR/parts/manifest")
        elif [[ -n ${HARNESS_DATA_ROOT:-} ]]; then
            n_calls=${SITTING_CALLS:-$k}
            say "no parts: using the data in HARNESS_DATA_ROOT=$HARNESS_DATA_ROOT as call $k of $n_calls"
        else
            die "no data: carry .sitting/part-NN and .sitting/manifest (made by prepare), or set HARNESS_DATA_ROOT"
        fi
        ((k <= n_calls)) || die "call $k, but the sitting has $n_calls calls"
    fi

    if [[ $WORK_MODE == none ]]; then
        say "call $label of $n_calls: SITTING_WORK=none, no work"
    else
        install
        start_clocks "$k" "$n_calls"
        say "call $k of $n_calls: $(call_work "$k" "$n_calls")"
        do_work "$k" "$n_calls"
    fi
    echo
    say "tasks of call $label:"
    column -t -s $'\t' "$tasks_file" 2>/dev/null || cat "$tasks_file"
    if [[ -n $all ]]; then # the log's last lines written before this returns (and anything after it prints)
        exec >&- 2>&-
        wait "$tee_pid" 2>/dev/null || true
    fi
}

# --- here: unpack --------------------------------------------------------------------------------

# A checkpoint whose run the bundle now holds as completed is no longer needed (harness deleted it
# there); the others stay, git-ignored, for the next sitting's last call to carry.
drop_finished_checkpoints() {
    [[ -d $BUNDLE/checkpoints ]] || return 0
    local python=$PY
    [[ -x $ROOT/.venv/bin/python ]] && python=$ROOT/.venv/bin/python
    "$python" - "$BUNDLE" <<'PY' || say "warning: could not read the bundle's runs (pyarrow?): its checkpoints are left as they are"
import sys
from pathlib import Path

import pyarrow.parquet as pq

bundle = Path(sys.argv[1])
kept = dropped = 0
for path in sorted((bundle / "checkpoints").glob("*.pt")):
    run = bundle / "runs" / f"{path.stem}.parquet"
    if run.exists() and "completed" in pq.read_table(run, columns=["status"]).column("status").to_pylist():
        path.unlink()
        dropped += 1
    else:
        kept += 1
print(f"gpu-sitting: {bundle}/checkpoints: {kept} of unfinished runs kept (never committed), {dropped} of completed runs removed")
PY
}

unpack() {
    local from=${1:-}
    [[ -n $from && -d $from ]] || die "unpack needs the folder where a call's files landed"
    restore
    local dest=$ROOT/results/sitting sums found=0 sum k md5 size count pieces tmp actual
    mkdir -p "$dest"
    mapfile -t sums < <(find "$from" -name 'sitting-*.md5' -type f | sort -V)
    for sum in "${sums[@]}"; do
        k=$(basename "$sum" .md5)
        k=${k#sitting-}
        read -r md5 size count <"$sum"
        mapfile -t pieces < <(find "$(dirname "$sum")" -maxdepth 1 -name "sitting-$k.tar.gz.*" -type f | sort)
        ((${#pieces[@]} == count)) || die "call $k sent $count pieces, ${#pieces[@]} are in $(dirname "$sum"): the rest were left out on the way"
        actual=$(cat "${pieces[@]}" | md5_of)
        [[ $actual == "$md5" ]] || die "call $k's pieces are damaged: md5 $actual, it sent $md5"
        tmp=$(mktemp -d)
        cat "${pieces[@]}" | tar -xzf - -C "$tmp" --no-same-owner
        chmod -R u+w "$tmp"
        rm -rf "$dest/step-$k"
        mkdir -p "$dest/step-$k"
        cp -a "$tmp/step-$k/." "$dest/step-$k/"
        if [[ -d $tmp/bundle ]]; then
            mkdir -p "$BUNDLE"
            cp -a "$tmp/bundle/." "$BUNDLE/"
            local tables
            tables=$(cd "$tmp/bundle" && find . -type f ! -path './checkpoints/*' | wc -l)
            say "call $k: $tables new or changed files in $BUNDLE"
        fi
        if [[ -f $dest/step-$k/checkpoints-left-behind.txt ]]; then
            say "call $k: checkpoints that did not come back (those runs start over): $(tr '\n' ' ' <"$dest/step-$k/checkpoints-left-behind.txt")"
        fi
        rm -rf "$tmp"
        found=$((found + 1))
    done
    # The logs as they came (also when the call was cut off before it packed anything).
    local f
    while IFS= read -r -d '' f; do
        k=$(basename "$f")
        k=${k#step-}
        k=${k#machine-}
        k=${k%.*}
        mkdir -p "$dest/step-$k"
        cp "$f" "$dest/step-$k/" && chmod u+w "$dest/step-$k/$(basename "$f")"
    done < <(find "$from" \( -name 'step-*.log' -o -name 'machine-*.txt' \) -type f -print0)
    ((found > 0)) || say "warning: no sitting-K.md5 under $from: nothing was packed (was the call cut off?); logs copied to $dest"
    drop_finished_checkpoints
    echo
    say "logs and benchmark outputs: $dest (git-ignored)"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        echo
        git status --short -- "$BUNDLE"
    fi
    cat <<EOF

To commit: the bundle's Parquet tables and the reproduction status they feed, never checkpoints
(git-ignored: they stay in $BUNDLE/checkpoints and the next sitting's last call carries them)
nor data:
  harness docs
  git add $BUNDLE docs/reproduction.md && git commit
EOF
}

# --- main ----------------------------------------------------------------------------------------

command=${1:-}
shift || true
case $command in
    lighten) lighten ;;
    restore) restore ;;
    prepare) prepare "$@" ;;
    step) step "$@" ;;
    sweeps)
        use_harness
        run_sweeps "${1:-$BUNDLE}" "${SITTING_BUDGET_S:-0}"
        ;;
    unpack) unpack "$@" ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d' | sed 's/^# \{0,1\}//' ;;
    *) die "usage: scripts/gpu-sitting.sh lighten | prepare [DATA_ROOT] | step K|all | sweeps [BUNDLE] | unpack DIR | restore (--help)" ;;
esac
