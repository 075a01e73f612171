#!/usr/bin/env bash
# oodbench on one GPU (written for an H200): training steps/s of cross_entropy and joint on
# VGG-13 + DCGAN at 3x32x32 (batch 128, fp32 / bf16 autocast / bf16 + channels_last), MSP and
# ODIN scoring throughput, a smoke run of the training loop and checkpoints on the device, and,
# when the CLI's dependencies are installed, `oodbench train` with --bf16 --channels-last on the
# embedded suite. Every step is time-bounded; the whole script stays under 8 minutes.
#
#   bash benchmarks/gpu.sh            # results in ./gpu_results.txt (or $OUT/gpu_results.txt)
#
# Assumes python3 with torch (CUDA) is installed; nothing is installed or downloaded. oodbench is
# used from this checkout via PYTHONPATH (no `pip install -e .` needed).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
OUT_DIR="${OUT:-.}"
mkdir -p "$OUT_DIR"
RESULTS="$OUT_DIR/gpu_results.txt"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
start=$(date +%s)

{
  echo "# oodbench GPU benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "nvidia-smi not available"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| cuda available:', torch.cuda.is_available())" 2>&1
} | tee "$RESULTS"

# 1-3: steps/s, scoring throughput, loop smoke test (at most ~5 minutes; 12 s per measurement).
echo | tee -a "$RESULTS"
timeout 330 "$PY" benchmarks/bench_gpu.py --device cuda --batch 128 --score-batch 512 --seconds 12 2>&1 | tee -a "$RESULTS"
status=${PIPESTATUS[0]}
[ "$status" -eq 124 ] && echo "bench_gpu.py stopped by its 330 s time limit" | tee -a "$RESULTS"

# 4: the CLI end to end on the GPU, only if its dependencies are importable (no installs here).
echo | tee -a "$RESULTS"
echo "## 4. oodbench train --method joint --in mnist --epochs 2 --device cuda --bf16 --channels-last" | tee -a "$RESULTS"
if "$PY" -c "import click, tqdm, numpy, pandas, scipy, sklearn, matplotlib, PIL" 2>/dev/null; then
  cache=$(mktemp -d)
  ( time timeout 100 "$PY" -m oodbench.cli train --method joint --in mnist --epochs 2 --device cuda \
      --bf16 --channels-last --cache-dir "$cache" --quiet ) 2>&1 | tail -n 12 | tee -a "$RESULTS"
  rm -rf "$cache"
else
  echo "skipped: the CLI's Python dependencies (click, tqdm, pandas, scipy, scikit-learn, matplotlib, pillow) are not all installed" | tee -a "$RESULTS"
fi

echo | tee -a "$RESULTS"
echo "total seconds: $(( $(date +%s) - start ))" | tee -a "$RESULTS"
