#!/usr/bin/env bash
# oodbench on one GPU (written for an H200), as ONE short script (< 8 minutes, every step
# time-bounded):
#   1. benchmarks/bench_gpu.py: training steps/s of cross_entropy and joint on VGG-13 + DCGAN at
#      3x32x32, batch 128 (fp32; bf16 + channels_last + fused Adam; the same under torch.compile),
#      two real epochs of `train()` joint on 72,257 synthetic uint8 images (the SVHN training set's
#      size) with the implied wall time of the 100-epoch lee2018-svhn joint recipe (goal < 15 min),
#      MSP / ODIN scoring throughput, and a train + resume + load_classifier smoke run;
#   2. `torchrun --nproc_per_node=${NPROC:-1} -m oodbench train ...` on the embedded suite with
#      --bf16 --channels-last: the DDP (nccl) code path end to end, if the CLI's dependencies exist.
#
#   bash benchmarks/gpu.sh            # summary in benchmarks/gpu_results.md, or $OUT/gpu_results.md
#   bash benchmarks/gpu.sh --smoke    # CPU smoke test of this script (tiny sizes, ~15 s)
#
# The compact summary goes to gpu_results.md, the full log to gpu_log.txt (same folder).
# Assumes python3 with torch (CUDA) is installed; nothing is installed or downloaded. oodbench is
# used from this checkout via PYTHONPATH (no `pip install -e .` needed).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
if [ -n "${OUT:-}" ]; then
  OUT_DIR="$OUT"
elif [ "$SMOKE" = 1 ]; then
  OUT_DIR="$(mktemp -d)"
else
  OUT_DIR="benchmarks"
fi
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/gpu_results.md"
LOG="$OUT_DIR/gpu_log.txt"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
start=$(date +%s)
if [ "$SMOKE" = 1 ]; then
  BENCH_ARGS=(--device cpu --quick)
  TRAIN_ARGS=(--device cpu --epochs 1 --batch-size 500)
else
  BENCH_ARGS=(--device cuda --batch 128)
  TRAIN_ARGS=(--device cuda --epochs 2 --bf16 --channels-last)
fi

{
  echo "# oodbench GPU benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$([ "$SMOKE" = 1 ] && echo ' (CPU SMOKE TEST)')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "nvidia-smi not available"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| cuda available:', torch.cuda.is_available())" 2>&1
} | tee "$LOG"

# 1. bench_gpu.py (at most 400 s).
echo | tee -a "$LOG"
timeout 400 "$PY" benchmarks/bench_gpu.py "${BENCH_ARGS[@]}" --summary "$SUMMARY.part" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
[ "$status" -eq 124 ] && echo "- bench_gpu.py stopped by its 400 s time limit" | tee -a "$LOG" "$SUMMARY.part"
[ -f "$SUMMARY.part" ] || echo "- bench_gpu.py wrote no summary (exit $status; see gpu_log.txt)" > "$SUMMARY.part"

# 2. The CLI under torchrun (DDP path), only if its dependencies are importable (no installs here).
cmd=("$PY" -m torch.distributed.run --standalone --nproc_per_node="${NPROC:-1}" -m oodbench train
     --method cross_entropy --in mnist "${TRAIN_ARGS[@]}" --quiet)
echo | tee -a "$LOG"
echo "## torchrun: ${cmd[*]:1}" | tee -a "$LOG"
if "$PY" -c "import click, tqdm, numpy, pandas, scipy, sklearn, matplotlib, PIL" 2>/dev/null; then
  cache=$(mktemp -d)
  t0=$(date +%s)
  OODBENCH_CACHE="$cache" timeout 120 "${cmd[@]}" > "$OUT_DIR/torchrun.txt" 2>&1
  rc=$?
  tail -n 8 "$OUT_DIR/torchrun.txt" | tee -a "$LOG"
  if [ "$rc" -eq 0 ] && grep -q "^Checkpoint: " "$OUT_DIR/torchrun.txt"; then
    verdict="OK ($(( $(date +%s) - t0 )) s; $(grep -c '^Checkpoint: ' "$OUT_DIR/torchrun.txt") checkpoint line)"
  else
    verdict="FAILED (exit $rc; see torchrun.txt)"
  fi
  rm -rf "$cache"
else
  verdict="skipped: the CLI's Python dependencies are not all installed"
fi
echo "- torchrun --nproc_per_node=${NPROC:-1} -m oodbench train (DDP path): $verdict" >> "$SUMMARY.part"

total=$(( $(date +%s) - start ))
echo "- total seconds: $total" >> "$SUMMARY.part"
mv "$SUMMARY.part" "$SUMMARY"
echo | tee -a "$LOG"
cat "$SUMMARY" | tee -a "$LOG"
echo "(summary: $SUMMARY; full log: $LOG)"
