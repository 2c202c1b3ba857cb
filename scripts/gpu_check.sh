#!/usr/bin/env bash
# The CUDA path, measured on a machine with an NVIDIA GPU (see obscura/gpucheck.py and the
# README's "CUDA" section). Installs and fetches nothing.
#
#   scripts/gpu_check.sh OUT_DIR [--device cuda|cpu] [--seconds S] [...]
#
# Environment: OBSCURA_MODEL_DIR (the model store to use), OBSCURA_CLIP (the clip),
# PYTHON (default python3), GPU_CHECK_TIMEOUT (seconds, default 470). ONNX Runtime (the GPU
# build for CUDA), grpcio, numpy and opencv come from PYTHON's path (PYTHONPATH included);
# Obscura from this checkout. Writes OUT_DIR/gpu_check.json (rewritten after every step),
# OUT_DIR/gpu_check.log and the daemons' logs.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [options]}
shift
mkdir -p "$out"
python=${PYTHON:-python3}
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/daemon"
# The CUDA and cuDNN libraries of the nvidia-* wheels, where ONNX Runtime's CUDA provider
# looks for them (the loader reads LD_LIBRARY_PATH once, at the start of a process).
libs=$("$python" -m obscura.gpucheck "$out" --print-library-path 2>>"$out/gpu_check.log")
if [ -n "$libs" ]; then
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
timeout -k 10 "${GPU_CHECK_TIMEOUT:-470}" "$python" -m obscura.gpucheck "$out" "$@"
status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "gpu_check: stopped after ${GPU_CHECK_TIMEOUT:-470} s; $out/gpu_check.json holds the steps done" >&2
fi
exit "$status"
