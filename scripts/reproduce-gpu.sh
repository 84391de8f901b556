#!/usr/bin/env bash
# The paper at full scale on one machine with a CUDA GPU and the data: the GPU tests, the GPU
# benchmarks, the design card's command, then the full-scale sweeps and Table 3 into reproduction/h200.
#
# Usage:
#   HARNESS_DATA_ROOT=/path/to/data scripts/reproduce-gpu.sh [SECONDS]
#
#   HARNESS_DATA_ROOT  the folder holding MNIST/raw/ and cifar10/{train,test}.npz (or cifar-10-batches-py/)
#   SECONDS            the sweeps' time budget: stop them after this long (default: until every sweep is
#                      done). Every sweep skips the runs the bundle already holds, and the one running at
#                      the budget stores its unfinished runs with their checkpoints, so running this
#                      again resumes where it stopped.
#
# In order: every GPU test (pytest -m gpu), Table 3 on all of MNIST, the GPU kernel benchmark, the
# packed training throughput benchmark, the design card's command on all 50,000 CIFAR-10 images,
# then sweeps/table1.toml, fig2b, fig1a and fig1bc, then Table 3's CIFAR-10 rows. Each task before
# the sweeps runs under its own cap; a task that fails is noted and the next one starts.
#
# Results: the bundle's Parquet tables in reproduction/h200 (commit them); the logs and benchmark
# outputs in results/sitting/step-all/ (git-ignored; tasks.tsv lists each task, its exit status and
# seconds). Commit the tables and the status page they feed, never checkpoints or data:
#   harness docs
#   git add reproduction/h200 docs/reproduction.md && git commit
#
# Settings (environment):
#   PYTHON             the Python with torch (built for CUDA) and the project's dependencies
#                      (default: this checkout's .venv/bin/python, else python3); the project is
#                      installed from this checkout if that Python does not import it from here
#   SITTING_SKIP       tasks not to run: gpu-tests table3-mnist gpu-kernel-solver pack-throughput
#                      ddp-overhead design-card sweeps
#   SITTING_BUNDLE     the bundle to fill (default reproduction/h200)
#   the tasks' caps and the sweeps' options: see scripts/gpu-sitting.sh --help, whose `step all`
#   this runs (the maintainers' tool that also runs the same tasks over size-limited calls)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

die() {
    echo "reproduce-gpu: error: $*" >&2
    exit 1
}
say() { echo "reproduce-gpu: $*"; }

case ${1:-} in
    -h | --help | help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
esac
(($# <= 1)) || die "usage: HARNESS_DATA_ROOT=/path/to/data scripts/reproduce-gpu.sh [SECONDS] (--help)"
budget=${1:-${SITTING_BUDGET_S:-0}}
[[ $budget =~ ^[0-9]+$ ]] || die "SECONDS is the sweeps' time budget in whole seconds (0: until every sweep is done), not '$budget'"

if [[ -n ${PYTHON:-} ]]; then
    PY=$PYTHON
elif [[ -x $ROOT/.venv/bin/python ]]; then
    PY=$ROOT/.venv/bin/python
else
    PY=python3
fi

data=${HARNESS_DATA_ROOT:-}
[[ -n $data && -d $data/MNIST/raw && (-f $data/cifar10/train.npz || -d $data/cifar-10-batches-py) ]] ||
    die "HARNESS_DATA_ROOT${data:+=$data} must name the folder holding MNIST/raw/ and cifar10/train.npz (or cifar-10-batches-py/)"
gpu=$("$PY" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "")' 2>/dev/null || true)
[[ -n $gpu ]] || die "no CUDA GPU: $PY cannot import torch or torch.cuda.is_available() is False here (set PYTHON to the Python with torch built for CUDA)"
say "data: $data; GPU: $gpu; python: $PY; sweeps: $( ((budget > 0)) && echo "for at most $budget s" || echo "until every sweep is done")"

bundle=${SITTING_BUNDLE:-reproduction/h200}
logs=results/sitting/step-all
rc=0
OUT='' SITTING_PYTHON=$PY SITTING_BUDGET_S=$budget bash scripts/gpu-sitting.sh step all || rc=$?
((rc == 0)) || die "stopped before its tasks were done (exit status $rc): see $logs/step-all.log"

failed=$(awk -F'\t' 'NR > 1 && $2 != "-" && $2 != 0 && $2 != 124 && $2 != 137 { printf "%s ", $1 }' "$logs/tasks.tsv")
cut_short=$(awk -F'\t' 'NR > 1 && ($2 == 124 || $2 == 137 || $4 ~ /^not started/) { printf "%s ", $1 }' "$logs/tasks.tsv")
cat <<EOF

Results:
  $bundle/    the bundle: its Parquet tables (runs, epochs, examples, Table 3's kernel runs)
  $logs/    logs and benchmark outputs (git-ignored): each task's .txt, tasks.tsv
EOF
[[ -z $cut_short ]] || echo "Stopped at their time limit or not started: ${cut_short% }: run this again to go on (the sweeps resume where they stopped)."
cat <<EOF

To commit: the bundle's Parquet tables and the reproduction status they feed, never checkpoints
($bundle/checkpoints, git-ignored: the next run resumes from them) nor data:
  harness docs
  git add $bundle docs/reproduction.md && git commit
EOF
[[ -z $failed ]] || die "failed: ${failed% } (see their .txt in $logs/)"
