#!/bin/sh
# The real-GPU check (bench/README.md, "GPU"): a ~100 s GPT training on the GPU, printing nanoGPT's
# lines through `| tee`, followed live by trainwatch's GPU parts; prints what trainwatch saw against
# what happened, and writes it to $OUT/gpu_check.txt when OUT is set. About 2.5 minutes in all.
#   bench/gpu_check.sh [SECONDS]        PYTHON=... picks the interpreter that has torch (default python3)
# Needs torch and nvidia-ml-py; wheels in .whl/ are installed first into a private folder, if any.
set -u
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/tw-site .whl/*.whl \
        && export PYTHONPATH="/tmp/tw-site${PYTHONPATH:+:$PYTHONPATH}"
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,power.draw,power.limit,memory.total --format=csv
exec timeout 280 "$PY" -u bench/gpu_check.py --seconds "${1:-100}"
