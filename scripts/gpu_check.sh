#!/usr/bin/env bash
# GPU check, for a machine with a CUDA GPU; under 8 minutes on one GPU:
#   1. the CUDA-marked tests (tests/gpu: attacks, generators, fp16/bf16 autocast, a 1-GPU Lightning fit
#      with TPA-AT and the callbacks, evaluate.py on the GPU);
#   2. benchmarks/attack_throughput.py and 3. benchmarks/training_throughput.py at larger sizes.
# Everything it writes goes to docs/benchmarks/gpu/ (logs, CSVs, run.txt with the machine and each
# step's exit status). Each step runs under `timeout`, capped by what is left of the budget.
#
#   bash scripts/gpu_check.sh            # PYTHON=... to choose the interpreter, GPU_CHECK_BUDGET_S=... the budget
#
# Exit status: 2 when torch sees no CUDA GPU (nothing is run); else 0 when every step exited 0, 1 if not.
# Both benchmarks run with --device cuda (models, images, attacks and the Trainer on the GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python}
OUT=docs/benchmarks/gpu
BUDGET_S=${GPU_CHECK_BUDGET_S:-455}      # the steps; + kill grace and run.txt, under 8 min (480 s)
START=$(date +%s)
export PYTHONUNBUFFERED=1

if ! "$PY" -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
  echo "gpu_check: torch sees no CUDA GPU (torch.cuda.is_available() is False); nothing was run" >&2
  exit 2
fi
mkdir -p "$OUT"

NAMES=()
STATUSES=()

# step NAME CAP_S LOG COMMAND...: run COMMAND under `timeout` for CAP_S seconds or what is left of
# the budget, whichever is less; its output goes to the terminal and to LOG. The exit status is
# recorded (124: timed out; "skipped": under 10 s left) and the script goes on to the next step.
step() {
  local name=$1 cap=$2 log=$3
  shift 3
  local left=$((BUDGET_S - ($(date +%s) - START)))
  local limit=$((cap < left ? cap : left))
  local status
  if ((limit < 10)); then
    echo "== $name: skipped (${left} s left of the ${BUDGET_S} s budget)" | tee "$log"
    status=skipped
  else
    echo "== $name (limit ${limit} s): $*"
    set +e
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    echo "== $name: exit $status"
  fi
  NAMES+=("$name")
  STATUSES+=("$status")
}

step "pytest -m cuda tests/gpu" 240 "$OUT/pytest.log" \
  "$PY" -m pytest -q -m cuda tests/gpu -p no:cacheprovider --durations=10

step "benchmarks.attack_throughput" 120 "$OUT/attack_throughput.log" \
  "$PY" -m benchmarks.attack_throughput --model pretrained:autoattack_resnet18 --batch 64 --steps 1 \
  --copies 10 --repeats 3 --max-batch 256 --memory "" --device cuda --out "$OUT/attack_throughput.csv"

step "benchmarks.training_throughput" 90 "$OUT/training_throughput.log" \
  "$PY" -m benchmarks.training_throughput --batches 16 --batch-size 512 --repeats 2 --device cuda \
  --csv "$OUT/training_throughput.csv"

{
  echo "scripts/gpu_check.sh, run of $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname 2>/dev/null || echo '?')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  echo "$ nvidia-smi --query-gpu=name,memory.total --format=csv"
  nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 || echo "(nvidia-smi failed)"
  echo
  "$PY" -c "import torch, lightning; print(f'torch {torch.__version__} (CUDA {torch.version.cuda}), '
             f'lightning {lightning.__version__}, GPUs seen by torch: {torch.cuda.device_count()}')" 2>&1 \
    || echo "(torch version: failed)"
  echo "CPU: $(nproc) cores. The benchmarks ran with --device cuda (model, images, attacks and Trainer on the GPU)."
  echo
  echo "exit status per step (124: timed out):"
  for i in "${!NAMES[@]}"; do
    echo "  ${NAMES[$i]}: ${STATUSES[$i]}"
  done
  echo "total: $(($(date +%s) - START)) s of the ${BUDGET_S} s budget"
} >"$OUT/run.txt"
cat "$OUT/run.txt"

for s in "${STATUSES[@]}"; do
  [ "$s" = 0 ] || exit 1
done
exit 0
