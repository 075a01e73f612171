#!/usr/bin/env bash
# Issue 17 ("Data at any scale"), the performance figures, in one run: writes $OUT/results-issue17.txt.
#
#   benchmarks/bench_issue17.sh                                   # full sizes (quiet machine)
#   N_BIG=1000 N_SMALL=100 N_JPEG=500 N_JPEG_TRAIN=50 LIMIT=100 \
#     THROUGHPUT_JPEGS=200 THROUGHPUT_PNGS=500 EMBEDDED_ARGS="-m cross_entropy --epochs 1 -d msp" \
#     DATA=/tmp/bench-data-small OUT=/tmp/bench17-small benchmarks/bench_issue17.sh   # a quick check
#   STEPS="a c" benchmarks/bench_issue17.sh                       # only some steps
#
# Steps (each `oodbench run` in a fresh process under /usr/bin/time -v: wall time and peak RSS):
#   a  peak RSS of `--out folder:` with N_BIG vs N_SMALL 32x32 PNGs on the embedded suite (mnist)
#      with a given checkpoint (CHECKPOINT, else a 1-epoch tiny_cnn trained once), no --limit;
#      and the suite alone (base). Target: N_BIG at most 300 MB above N_SMALL.
#   b  a N_JPEG-image 224x224 JPEG class folder as a suite file's ID test set, scored at 224 px
#      by a tiny 224-px CNN (msp). Target: peak RSS below 2 GB.
#   c  --limit LIMIT on the N_BIG folder vs the full run: data time of the `--out` set
#      (bench_data.py out-time: the runner's load_custom_outs + one pass over its batches) and the
#      runs' wall times. Target: the limited data time under 5% of the full one.
#   d  decode throughput, in-process vs WORKERS workers vs torchvision ImageFolder + DataLoader
#      (bench_data.py throughput). Target: workers >= 1.7x in-process and >= torchvision.
#   e  the embedded `oodbench run` (EMBEDDED_ARGS) cold (empty cache) and cached, before
#      (BEFORE_COMMIT, checked out with `git worktree add --detach` into BEFORE_DIR) and after
#      (AFTER_REPO, default the checkout holding this script). Target: not slower.
#
# Data sets are made once under DATA with bench_data.py make-images (nice -n 19) and kept: a set
# whose .bench-complete marker matches its parameters is reused, anything else is made again.
# Set OMP_NUM_THREADS yourself if wanted; it is passed through and written to the results.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AFTER_REPO="${AFTER_REPO:-$(cd "$HERE/.." && pwd)}"
PYTHON="${PYTHON:-python}"
DATA="${DATA:-/tmp/bench-data}"
OUT="${OUT:-/tmp/bench-issue17}"
N_BIG="${N_BIG:-100000}"
N_SMALL="${N_SMALL:-10000}"
N_JPEG="${N_JPEG:-50000}"
N_JPEG_TRAIN="${N_JPEG_TRAIN:-500}"
LIMIT="${LIMIT:-1000}"
WORKERS="${WORKERS:-2}"
THROUGHPUT_JPEGS="${THROUGHPUT_JPEGS:-1000}"
THROUGHPUT_PNGS="${THROUGHPUT_PNGS:-5000}"
BEFORE_COMMIT="${BEFORE_COMMIT:-79e46f0}"
BEFORE_DIR="${BEFORE_DIR:-/tmp/oodbench-before-$BEFORE_COMMIT}"
EMBEDDED_ARGS="${EMBEDDED_ARGS:-}"
CHECKPOINT="${CHECKPOINT:-}"
STEPS="${STEPS:-a b c d e}"

[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
mkdir -p "$DATA" "$OUT"
RESULTS="$OUT/results-issue17.txt"
WORK="$OUT/work"
mkdir -p "$WORK"
BENCH_DATA="$AFTER_REPO/benchmarks/bench_data.py"

say() { echo "$*" | tee -a "$RESULTS"; }
# timed NAME REPO CMD...: run CMD with PYTHONPATH=REPO under /usr/bin/time -v; log in $WORK/NAME.log.
timed() {
    local name="$1" repo="$2"
    shift 2
    local log="$WORK/$name.log"
    if ! PYTHONPATH="$repo" /usr/bin/time -v "$@" >"$log" 2>&1; then
        say "$name: FAILED (exit status in $log): $*"
        tail -n 25 "$log" >&2
        return 1
    fi
    local wall peak
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log")
    peak=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
    say "$name: wall $wall, peak RSS $((peak / 1024)) MB"
    say "    \$ PYTHONPATH=$repo $*"
}
# run_a NAME ARGS...: the step a/c run (embedded suite, the checkpoint, msp) plus ARGS, timed, from
# an empty score cache of its own (a run never reuses another's cached scores).
run_a() {
    local name="$1"
    shift
    rm -rf "$WORK/caches/$name"
    timed "$name" "$AFTER_REPO" "${RUN_A[@]}" --cache-dir "$WORK/caches/$name" "$@"
}
peak_mb() { echo $(($(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/$1.log") / 1024)); }
make_set() {  # make_set DIR N SIZE FORMAT
    nice -n 19 "$PYTHON" "$BENCH_DATA" make-images "$1" "$2" --size "$3" --format "$4" | tee -a "$RESULTS"
}
has_step() { [[ " $STEPS " == *" $1 "* ]]; }

{
    echo "# benchmarks/bench_issue17.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# after: $AFTER_REPO ($(git -C "$AFTER_REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "# host: $(getconf _NPROCESSORS_ONLN) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
    echo "# N_BIG=$N_BIG N_SMALL=$N_SMALL N_JPEG=$N_JPEG LIMIT=$LIMIT WORKERS=$WORKERS STEPS='$STEPS'"
} >"$RESULTS"

OODBENCH=("$PYTHON" -m oodbench)
export OODBENCH_CACHE="$WORK/cache" OODBENCH_RESULTS="$WORK/runs"

if has_step a || has_step c; then
    make_set "$DATA/png32-$N_SMALL" "$N_SMALL" 32 png
    make_set "$DATA/png32-$N_BIG" "$N_BIG" 32 png
    if [ -z "$CHECKPOINT" ]; then
        CHECKPOINT="$WORK/tiny_cnn.pt"
        if [ ! -f "$CHECKPOINT" ]; then
            PYTHONPATH="$AFTER_REPO" "${OODBENCH[@]}" train -m cross_entropy --epochs 1 --quiet \
                --checkpoint "$CHECKPOINT" >/dev/null
        fi
    fi
    RUN_A=("${OODBENCH[@]}" run --checkpoint "$CHECKPOINT" -d msp --plots none --quiet --workers "$WORKERS")
fi

if has_step a; then
    say ""
    say "## a. --out folder: of $N_BIG vs $N_SMALL 32x32 PNGs, embedded suite, checkpoint $CHECKPOINT"
    run_a a-base
    run_a a-out-$N_SMALL --out "folder:$DATA/png32-$N_SMALL"
    run_a a-out-$N_BIG --out "folder:$DATA/png32-$N_BIG"
    say "a: peak RSS $N_BIG minus $N_SMALL: $(($(peak_mb a-out-$N_BIG) - $(peak_mb a-out-$N_SMALL))) MB (target <= 300 MB)"
fi

if has_step b; then
    say ""
    say "## b. $N_JPEG 224x224 JPEGs (class folder) as a suite file's ID test set, scored at 224 px"
    make_set "$DATA/jpg224-$N_JPEG" "$N_JPEG" 224 jpg
    make_set "$DATA/jpg224-train-$N_JPEG_TRAIN" "$N_JPEG_TRAIN" 224 jpg
    cat >"$WORK/tiny224.py" <<'EOF'
from torch import nn


def build(num_classes=10):
    # A tiny CNN for 224x224 RGB inputs (the Linear's size needs them); stride-4 convs keep it cheap.
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=4, padding=2), nn.ReLU(),
        nn.Conv2d(8, 16, 5, stride=4, padding=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 14 * 14, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )
EOF
    PYTHONPATH="$WORK" "$PYTHON" -c "import torch, tiny224; torch.manual_seed(0); \
torch.save(tiny224.build().state_dict(), '$WORK/tiny224.pt')"
    cat >"$WORK/jpeg224.toml" <<EOF
format = 1
name = "jpeg224"
description = "bench_issue17.sh step b: $N_JPEG generated 224x224 JPEGs as the ID test set"

[in_distribution]
classes = 10
train = { classes = "$DATA/jpg224-train-$N_JPEG_TRAIN" }
val = { holdout = $((N_JPEG_TRAIN / 10)) }
test = { classes = "$DATA/jpg224-$N_JPEG" }

[preprocess]
channels = 3
size = [224, 224]
interpolation = "bilinear"
normalize = "none"

[[ood]]
name = "gaussian"
group = "far"
dataset = "gaussian"
limit = 1000

[validation_ood]
name = "uniform"
dataset = "uniform"
limit = 100
EOF
    timed b-jpeg224-$N_JPEG "$AFTER_REPO" "${OODBENCH[@]}" run --suite "$WORK/jpeg224.toml" \
        --checkpoint "$WORK/tiny224.pt" --arch "$WORK/tiny224.py:build" -d msp --plots none --quiet \
        --workers "$WORKERS"
    say "b: peak RSS $(peak_mb b-jpeg224-$N_JPEG) MB (target < 2048 MB)"
fi

if has_step c; then
    say ""
    say "## c. --limit $LIMIT vs the full $N_BIG-image folder: data time of the --out set, and the runs"
    for limit in "$LIMIT" ""; do
        tag="${limit:-full}"
        (PYTHONPATH="$AFTER_REPO" "$PYTHON" "$BENCH_DATA" out-time "$DATA/png32-$N_BIG" \
            ${limit:+--limit "$limit"} | tee -a "$RESULTS") >"$WORK/c-out-time-$tag.txt"
    done
    limited=$(sed -n 's/.*data time \([0-9.]*\) s/\1/p' "$WORK/c-out-time-$LIMIT.txt")
    full=$(sed -n 's/.*data time \([0-9.]*\) s/\1/p' "$WORK/c-out-time-full.txt")
    say "c: data time with --limit $LIMIT / full: $(awk -v a="$limited" -v b="$full" 'BEGIN {printf "%.1f%%", 100 * a / b}') (target < 5%)"
    run_a c-run-limit-$LIMIT --out "folder:$DATA/png32-$N_BIG" --limit "$LIMIT"
    run_a c-run-full --out "folder:$DATA/png32-$N_BIG"
fi

if has_step d; then
    say ""
    say "## d. decode throughput: in process vs $WORKERS workers vs torchvision ImageFolder + DataLoader"
    PYTHONPATH="$AFTER_REPO" "$PYTHON" "$BENCH_DATA" throughput --jpegs "$THROUGHPUT_JPEGS" \
        --pngs "$THROUGHPUT_PNGS" --workers "0,$WORKERS" | tee -a "$RESULTS"
    say "    \$ PYTHONPATH=$AFTER_REPO $PYTHON $BENCH_DATA throughput --jpegs $THROUGHPUT_JPEGS --pngs $THROUGHPUT_PNGS --workers 0,$WORKERS"
fi

if has_step e; then
    say ""
    say "## e. the embedded oodbench run ($EMBEDDED_ARGS), cold and cached: before ($BEFORE_COMMIT) and after"
    if [ ! -d "$BEFORE_DIR" ]; then
        git -C "$AFTER_REPO" worktree add --detach "$BEFORE_DIR" "$BEFORE_COMMIT" >/dev/null 2>&1
    fi
    # shellcheck disable=SC2206  # EMBEDDED_ARGS is a list of options, split on purpose
    extra=($EMBEDDED_ARGS)
    for side in before after; do
        repo="$AFTER_REPO"
        [ "$side" = before ] && repo="$BEFORE_DIR"
        rm -rf "$WORK/e-$side"
        for pass in cold cached; do
            OODBENCH_CACHE="$WORK/e-$side/cache" OODBENCH_RESULTS="$WORK/e-$side/runs-$pass" \
                timed "e-$side-$pass" "$repo" "${OODBENCH[@]}" run --quiet "${extra[@]}"
        done
    done
fi

say ""
say "done: $RESULTS (logs in $WORK)"
