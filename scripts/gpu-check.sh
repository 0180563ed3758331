#!/usr/bin/env bash
# The built bundle on a GPU (Node, tfjs-backend-webgpu on Dawn): times, memory, max abs vs PyTorch.
# docs/gpu.md. Arguments: see `scripts/gpu-check.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=src exec .venv/bin/python -m sanet_tfjs.gpu_check "$@"
